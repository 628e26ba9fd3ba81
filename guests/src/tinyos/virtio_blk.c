/*
 * virtio_blk.c - the guest half of virtio-blk: one ring of requests shared with
 * the hypervisor.
 *
 * A request is a chain of three descriptors: a 16-byte header we fill in (type,
 * sector), the data buffer, and one status byte the device writes last. We offer
 * the chain's head in the available ring; the device hands it back through the used
 * ring when the disk is done. Writing QueueNotify is the only exit a batch of
 * requests costs: compare ata.c, where every 16-bit word is an IN instruction.
 *
 * Request slot i always uses descriptors 3i, 3i+1, 3i+2, so a finished head tells
 * us the slot. Initialisation follows virtio 1.2 section 3.1.1: reset, ACKNOWLEDGE,
 * DRIVER, negotiate features, FEATURES_OK, set up the queue, DRIVER_OK.
 */
#include "io.h"
#include "virtio_blk.h"

#define MMIO_BASE 0xD0000000u
#define MMIO_WINDOW 0x1000u

/* virtio-MMIO registers (offsets in the 4 KiB window). */
enum {
    REG_MAGIC = 0x000, REG_VERSION = 0x004, REG_DEVICE_ID = 0x008,
    REG_DEVICE_FEATURES = 0x010, REG_DEVICE_FEATURES_SEL = 0x014,
    REG_DRIVER_FEATURES = 0x020, REG_DRIVER_FEATURES_SEL = 0x024,
    REG_QUEUE_SEL = 0x030, REG_QUEUE_NUM_MAX = 0x034, REG_QUEUE_NUM = 0x038,
    REG_QUEUE_READY = 0x044, REG_QUEUE_NOTIFY = 0x050,
    REG_INTERRUPT_STATUS = 0x060, REG_INTERRUPT_ACK = 0x064, REG_STATUS = 0x070,
    REG_QUEUE_DESC = 0x080, REG_QUEUE_AVAIL = 0x090, REG_QUEUE_USED = 0x0A0,
    REG_CONFIG = 0x100,                 /* capacity: u64, in 512-byte sectors */
};
#define VIRTIO_MAGIC 0x74726976u        /* "virt" */
#define DEVICE_BLOCK 2
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define F_RO (1u << 5)                  /* the disk is read-only */
#define F_FLUSH (1u << 9)               /* the FLUSH request exists */
#define F_VERSION_1 (1u << 0)           /* bit 32: word 1, bit 0 */

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4

#define QSIZE 32                        /* >= 3 * VBLK_MAX_INFLIGHT, a power of two */
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2                  /* the device writes this buffer */
#define AVAIL_F_NO_INTERRUPT 1

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct avail { uint16_t flags, idx, ring[QSIZE], used_event; };
struct used_elem { uint32_t id, len; };
struct used { uint16_t flags, idx; struct used_elem ring[QSIZE]; uint16_t avail_event; };
struct header { uint32_t type, reserved; uint64_t sector; };

static struct {
    struct desc desc[QSIZE] __attribute__((aligned(16)));
    struct avail avail __attribute__((aligned(2)));
    struct used used __attribute__((aligned(4)));
    uint16_t seen;                      /* used-ring entries we have collected */
} q;

static struct {
    struct header header;
    volatile uint8_t status;
    uint8_t busy;
} slots[VBLK_MAX_INFLIGHT];

static uint32_t base, sectors, inflight;
static int readonly, can_flush;
static void (*idle_hook)(void);

#define barrier() __asm__ volatile("" ::: "memory")    /* x86 keeps stores in order */

static inline uint32_t reg_read(uint32_t offset)
{
    return *(volatile uint32_t *)(base + offset);
}

static inline void reg_write(uint32_t offset, uint32_t value)
{
    *(volatile uint32_t *)(base + offset) = value;
}

int vblk_probe(int interrupts)
{
    base = MMIO_BASE + VBLK_SLOT * MMIO_WINDOW;
    if (reg_read(REG_MAGIC) != VIRTIO_MAGIC || reg_read(REG_VERSION) != 2
        || reg_read(REG_DEVICE_ID) != DEVICE_BLOCK)
        return base = 0;
    reg_write(REG_STATUS, 0);                           /* reset */
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    reg_write(REG_DEVICE_FEATURES_SEL, 0);
    uint32_t low = reg_read(REG_DEVICE_FEATURES);
    reg_write(REG_DEVICE_FEATURES_SEL, 1);
    if (!(reg_read(REG_DEVICE_FEATURES) & F_VERSION_1))
        return base = 0;                                /* a legacy device: not ours */
    readonly = !!(low & F_RO);
    can_flush = !!(low & F_FLUSH);
    reg_write(REG_DRIVER_FEATURES_SEL, 0);
    reg_write(REG_DRIVER_FEATURES, low & (F_RO | F_FLUSH));
    reg_write(REG_DRIVER_FEATURES_SEL, 1);
    reg_write(REG_DRIVER_FEATURES, F_VERSION_1);
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    if (!(reg_read(REG_STATUS) & S_FEATURES_OK))
        return base = 0;

    reg_write(REG_QUEUE_SEL, 0);
    if (reg_read(REG_QUEUE_NUM_MAX) < QSIZE)
        return base = 0;
    reg_write(REG_QUEUE_NUM, QSIZE);
    q.avail.flags = interrupts ? 0 : AVAIL_F_NO_INTERRUPT;
    reg_write(REG_QUEUE_DESC, (uint32_t)q.desc);       /* flat memory: linear = physical */
    reg_write(REG_QUEUE_DESC + 4, 0);
    reg_write(REG_QUEUE_AVAIL, (uint32_t)&q.avail);
    reg_write(REG_QUEUE_AVAIL + 4, 0);
    reg_write(REG_QUEUE_USED, (uint32_t)&q.used);
    reg_write(REG_QUEUE_USED + 4, 0);
    reg_write(REG_QUEUE_READY, 1);
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);

    uint32_t cap_low = reg_read(REG_CONFIG), cap_high = reg_read(REG_CONFIG + 4);
    sectors = cap_high ? 0xFFFFFFFFu : cap_low;
    return 1;
}

uint32_t vblk_sectors(void) { return sectors; }
int vblk_readonly(void) { return readonly; }
int vblk_inflight(void) { return (int)inflight; }
void vblk_set_idle(void (*idle)(void)) { idle_hook = idle; }

static void set_desc(int i, void *addr, uint32_t len, uint16_t flags, int next)
{
    q.desc[i] = (struct desc){ (uint32_t)addr, len, flags, (uint16_t)next };
}

/* Put slot `tag`'s chain (descriptors 3*tag ...) in the available ring. */
static int offer(uint32_t type, uint32_t lba, void *buffer, uint32_t bytes)
{
    int tag = -1;
    for (int i = 0; i < VBLK_MAX_INFLIGHT && tag < 0; i++)
        if (!slots[i].busy)
            tag = i;
    if (tag < 0)
        return -1;
    int d = 3 * tag;
    slots[tag].busy = 1;
    slots[tag].status = 0xFF;
    slots[tag].header = (struct header){ type, 0, lba };
    set_desc(d, &slots[tag].header, sizeof(struct header), DESC_F_NEXT, bytes ? d + 1 : d + 2);
    if (bytes)
        set_desc(d + 1, buffer, bytes, DESC_F_NEXT | (type == T_IN ? DESC_F_WRITE : 0), d + 2);
    set_desc(d + 2, (void *)&slots[tag].status, 1, DESC_F_WRITE, 0);
    q.avail.ring[q.avail.idx % QSIZE] = (uint16_t)d;
    barrier();                          /* the chain is complete before the index moves */
    q.avail.idx++;
    inflight++;
    return tag;
}

int vblk_start(int write, uint32_t lba, uint32_t count, void *buffer)
{
    if (!base || (write && readonly) || count == 0)
        return -1;
    return offer(write ? T_OUT : T_IN, lba, buffer, count * VBLK_SECTOR);
}

int vblk_start_flush(void)
{
    return base && can_flush ? offer(T_FLUSH, 0, 0, 0) : -1;
}

void vblk_kick(void)
{
    barrier();
    reg_write(REG_QUEUE_NOTIFY, 0);
}

int vblk_done_waiting(void)
{
    return *(volatile uint16_t *)&q.used.idx != q.seen;
}

int vblk_poll(int *status)
{
    if (!vblk_done_waiting())
        return -1;
    barrier();
    int tag = (int)(q.used.ring[q.seen % QSIZE].id / 3);
    q.seen++;
    if (status)
        *status = slots[tag].status;
    slots[tag].busy = 0;
    inflight--;
    return tag;
}

/* Start one request, tell the device, wait for it (nothing else may be in flight). */
static int run_one(int tag)
{
    int status = VBLK_IOERR;
    if (tag < 0)
        return -1;
    vblk_kick();
    while (vblk_poll(&status) < 0)
        if (idle_hook)
            idle_hook();
    return status == VBLK_OK ? 0 : -1;
}

int vblk_rw(int write, uint32_t lba, uint32_t count, void *buffer)
{
    return run_one(vblk_start(write, lba, count, buffer));
}

int vblk_flush(void)
{
    if (base && !can_flush)
        return 0;                       /* no write cache: every write is durable already */
    return run_one(vblk_start_flush());
}

void vblk_interrupt(void)
{
    uint32_t why = reg_read(REG_INTERRUPT_STATUS);
    reg_write(REG_INTERRUPT_ACK, why);
}
