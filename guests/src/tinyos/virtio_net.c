/*
 * virtio_net.c - the guest half of virtio-net: two rings of buffers shared with
 * the hypervisor.
 *
 * A virtqueue is three arrays in our memory that we tell the device about:
 *   descriptors  where each buffer is (address, length, flags)
 *   avail ring   the buffers we offer the device, in order ("driver -> device")
 *   used ring    the buffers the device is done with, in order ("device -> driver")
 * Queue 0 (receive): we offer empty 1536-byte buffers; the device fills one per
 * arriving frame and interrupts. Queue 1 (transmit): we offer full buffers and
 * write the queue number to QueueNotify: that one MMIO write is the only exit
 * a frame costs. Each frame is preceded by a 12-byte virtio_net_hdr; we ask for
 * no offloads, so ours is all zeros.
 *
 * Initialisation follows virtio 1.2 section 3.1.1: reset, ACKNOWLEDGE, DRIVER,
 * negotiate features, FEATURES_OK, set up the queues, DRIVER_OK.
 */
#include "io.h"
#include "string.h"
#include "virtio_net.h"

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
    REG_CONFIG = 0x100,
};
#define VIRTIO_MAGIC 0x74726976u        /* "virt" */
#define DEVICE_NET 1
#define S_ACKNOWLEDGE 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define F_MAC (1u << 5)                 /* the device has a MAC address for us */
#define F_VERSION_1 (1u << 0)           /* bit 32: word 1, bit 0 */

#define QSIZE 16
#define BUF_SIZE 1536
#define NET_HDR 12
#define DESC_F_WRITE 2
#define AVAIL_F_NO_INTERRUPT 1
#define RX 0
#define TX 1

struct desc { uint64_t addr; uint32_t len; uint16_t flags, next; };
struct avail { uint16_t flags, idx, ring[QSIZE], used_event; };
struct used_elem { uint32_t id, len; };
struct used { uint16_t flags, idx; struct used_elem ring[QSIZE]; uint16_t avail_event; };

struct queue {
    struct desc desc[QSIZE] __attribute__((aligned(16)));
    struct avail avail __attribute__((aligned(2)));
    struct used used __attribute__((aligned(4)));
    uint16_t seen;                      /* used-ring entries we have processed */
    uint8_t buffers[QSIZE][BUF_SIZE];
};

static struct queue queues[2];
static uint32_t base;
static int irq_line;
static uint8_t mac[6];
static struct vnet_stats stats;
static vnet_receiver receiver;
static const int slot_irqs[4] = { 10, 11, 5, 9 };   /* the sandbox's virtio IRQ table */

static inline uint32_t reg_read(uint32_t offset)
{
    return *(volatile uint32_t *)(base + offset);
}

static inline void reg_write(uint32_t offset, uint32_t value)
{
    *(volatile uint32_t *)(base + offset) = value;
}

/* The compiler must not move ring writes across this point (our MMIO is uncached
 * and in order, so a compiler barrier is all x86 needs). */
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

static int setup_queue(int index)
{
    struct queue *q = &queues[index];
    reg_write(REG_QUEUE_SEL, index);
    if (reg_read(REG_QUEUE_READY) || reg_read(REG_QUEUE_NUM_MAX) < QSIZE)
        return 0;
    reg_write(REG_QUEUE_NUM, QSIZE);
    reg_write(REG_QUEUE_DESC, (uint32_t)q->desc);
    reg_write(REG_QUEUE_DESC + 4, 0);
    reg_write(REG_QUEUE_AVAIL, (uint32_t)&q->avail);
    reg_write(REG_QUEUE_AVAIL + 4, 0);
    reg_write(REG_QUEUE_USED, (uint32_t)&q->used);
    reg_write(REG_QUEUE_USED + 4, 0);
    reg_write(REG_QUEUE_READY, 1);
    return 1;
}

/* Offer descriptor i (buffer i) to the device on queue q. */
static void offer(struct queue *q, uint16_t i, uint32_t len, uint16_t flags)
{
    q->desc[i].addr = (uint32_t)q->buffers[i];
    q->desc[i].len = len;
    q->desc[i].flags = flags;
    q->desc[i].next = 0;
    q->avail.ring[q->avail.idx % QSIZE] = i;
    barrier();                          /* the entry before the index that publishes it */
    q->avail.idx++;
    barrier();
}

int vnet_probe(void)
{
    base = MMIO_BASE + VNET_SLOT * MMIO_WINDOW;
    if (reg_read(REG_MAGIC) != VIRTIO_MAGIC || reg_read(REG_VERSION) != 2
        || reg_read(REG_DEVICE_ID) != DEVICE_NET)
        return 0;
    reg_write(REG_STATUS, 0);                                   /* reset */
    reg_write(REG_STATUS, S_ACKNOWLEDGE);
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER);
    reg_write(REG_DEVICE_FEATURES_SEL, 0);
    uint32_t offered = reg_read(REG_DEVICE_FEATURES);
    reg_write(REG_DEVICE_FEATURES_SEL, 1);
    if (!(reg_read(REG_DEVICE_FEATURES) & F_VERSION_1))
        return 0;                       /* a legacy-only device: not for this driver */
    reg_write(REG_DRIVER_FEATURES_SEL, 0);
    reg_write(REG_DRIVER_FEATURES, offered & F_MAC);
    reg_write(REG_DRIVER_FEATURES_SEL, 1);
    reg_write(REG_DRIVER_FEATURES, F_VERSION_1);
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
    if (!(reg_read(REG_STATUS) & S_FEATURES_OK) || !setup_queue(RX) || !setup_queue(TX))
        return 0;
    for (int i = 0; i < 6; i++)
        mac[i] = (offered & F_MAC) ? *(volatile uint8_t *)(base + REG_CONFIG + i) : (uint8_t)(i ? 0 : 2);
    queues[TX].avail.flags = AVAIL_F_NO_INTERRUPT;  /* we reclaim sent buffers ourselves */
    reg_write(REG_STATUS, S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    for (uint16_t i = 0; i < QSIZE; i++)
        offer(&queues[RX], i, BUF_SIZE, DESC_F_WRITE);
    reg_write(REG_QUEUE_NOTIFY, RX);
    irq_line = slot_irqs[VNET_SLOT];
    return 1;
}

int vnet_irq(void) { return irq_line; }
const uint8_t *vnet_mac(void) { return mac; }
const struct vnet_stats *vnet_stats(void) { return &stats; }
void vnet_set_receiver(vnet_receiver fn) { receiver = fn; }

int vnet_send(const uint8_t *frame, uint32_t len)
{
    if (len > VNET_FRAME_MAX)
        len = VNET_FRAME_MAX;
    uint32_t flags = irq_save();
    struct queue *q = &queues[TX];
    /* Transmit buffers in flight = offered - returned. The device returns them in
     * order here, so buffer (avail.idx % QSIZE) is free once fewer than QSIZE are out. */
    q->seen = q->used.idx;
    if ((uint16_t)(q->avail.idx - q->seen) >= QSIZE) {
        stats.tx_full++;
        irq_restore(flags);
        return -1;
    }
    uint16_t i = q->avail.idx % QSIZE;
    uint32_t padded = len < 60 ? 60 : len;          /* Ethernet's minimum frame */
    memset(q->buffers[i], 0, NET_HDR);
    memcpy(q->buffers[i] + NET_HDR, frame, len);
    memset(q->buffers[i] + NET_HDR + len, 0, padded - len);
    offer(q, i, NET_HDR + padded, 0);
    reg_write(REG_QUEUE_NOTIFY, TX);                /* the exit: "there is work" */
    stats.tx_frames++;
    irq_restore(flags);
    return 0;
}

void vnet_interrupt(void)
{
    stats.interrupts++;
    /* Acknowledge first, then drain: a frame that lands after the drain raises a
     * new interrupt, one that lands before it is drained now. */
    reg_write(REG_INTERRUPT_ACK, reg_read(REG_INTERRUPT_STATUS));
    struct queue *q = &queues[RX];
    int returned = 0;
    while (q->seen != q->used.idx) {
        barrier();
        struct used_elem e = q->used.ring[q->seen % QSIZE];
        q->seen++;
        if (e.id < QSIZE) {
            if (e.len > NET_HDR && receiver) {
                stats.rx_frames++;
                receiver(q->buffers[e.id] + NET_HDR, e.len - NET_HDR);
            }
            offer(q, (uint16_t)e.id, BUF_SIZE, DESC_F_WRITE);
            returned = 1;
        }
    }
    if (returned)
        reg_write(REG_QUEUE_NOTIFY, RX);
}
