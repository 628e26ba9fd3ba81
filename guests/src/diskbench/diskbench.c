/*
 * diskbench.c - sequential and random disk I/O, with a pattern it verifies,
 * timed in guest time.
 *
 * It finds its disk the way tinyos does (virtio-blk at 0xD0000000, else ATA),
 * then works on a region of the disk after its own kernel:
 *
 *   mode=verify    seq-write, flush, seq-read (verified), rand-write, flush,
 *                  rand-read (verified), then power off
 *   mode=randread  random reads, one report line per `ops`, `reports` lines
 *                  (0 = forever): the load for a noisy-neighbour experiment
 *   mode=seqread   the whole region read in order, `reports` times
 *
 * Every word of sector s holds a value computed from s, the word's index and how
 * often that block was written, so a read returns the right data or it is an
 * error. On the sandbox (the hypercall port answers) each line ends with the
 * throughput and the time per request in guest time; under QEMU it prints only
 * what is the same on every run.
 *
 * Parameters on the Multiboot command line (sector 1 of diskbench.img): kib,
 * block (KiB per request), ops, qd (requests in flight, virtio only), seed,
 * start (first sector of the region), mode, reports, wait (irq or poll).
 */
#include <stdint.h>
#include "../tinyos/virtio_blk.h"
#include "atapio.h"
#include "diskbench.h"
#include "console.h"
#include "io.h"
#include "multiboot.h"
#include "pc.h"
#include "string.h"

#define SECTOR 512
#define BUFFER_KIB 4096                 /* qd x block may not exceed this */
#define MAX_BLOCKS 4096

/* ---- the disk, whichever bus it is on -------------------------------------- */

static int virtio;
static uint32_t disk_sectors;

struct slot {
    int busy, write, ok;
    uint32_t block;
    uint8_t *buffer;
};

static uint8_t buffers[BUFFER_KIB * 1024] __attribute__((aligned(4096)));   /* qd slots of `block` KiB */
static struct slot slots[VBLK_MAX_INFLIGHT];
static int tag_slot[VBLK_MAX_INFLIGHT];
static int ata_done[VBLK_MAX_INFLIGHT], ata_done_count;
static int need_kick;                   /* virtio requests queued since the last QueueNotify */

static uint32_t block_lba(uint32_t block)
{
    return p.start + block * (p.block * 1024 / SECTOR);
}

/* Start slot s's transfer. ATA does one command at a time: it finishes here. */
static void start(int s)
{
    struct slot *x = &slots[s];
    uint32_t count = p.block * 1024 / SECTOR;
    if (virtio) {
        int tag = vblk_start(x->write, block_lba(x->block), count, x->buffer);
        if (tag >= 0)
            tag_slot[tag] = s, need_kick = 1;
        x->ok = tag >= 0;
        if (tag < 0)
            ata_done[ata_done_count++] = s;     /* refused: report it as failed */
    } else {
        x->ok = atapio_rw(x->write, block_lba(x->block), count, x->buffer) == 0;
        ata_done[ata_done_count++] = s;
    }
}

/* A finished slot: waits for one if `wait`, else -1 when none is finished yet. */
static int finish(int wait)
{
    if (ata_done_count) {
        int s = ata_done[0];
        for (int i = 1; i < ata_done_count; i++)
            ata_done[i - 1] = ata_done[i];
        ata_done_count--;
        return s;
    }
    if (!virtio)
        return -1;
    if (need_kick)
        vblk_kick();                    /* one exit for everything queued since the last */
    need_kick = 0;
    int status, tag;
    while ((tag = vblk_poll(&status)) < 0) {
        if (!wait)
            return -1;
        if (p.wait[0] == 'i')
            sleep_until_interrupt();
    }
    slots[tag_slot[tag]].ok = status == VBLK_OK;
    return tag_slot[tag];
}

static int flush(void)
{
    return virtio ? vblk_flush() : atapio_flush();
}

/* ---- the pattern ----------------------------------------------------------- */

static uint16_t generation[MAX_BLOCKS];     /* how often each block was written */
static uint32_t rng;

static uint32_t pattern(uint32_t sector, uint32_t word, uint32_t gen)
{
    uint32_t x = sector * 0x9E3779B1u ^ word * 0x85EBCA77u ^ (gen + 1) * 0xC2B2AE3Du;
    return x ^ x >> 15;
}

static void fill(struct slot *x)
{
    uint32_t *w = (uint32_t *)x->buffer, lba = block_lba(x->block);
    for (uint32_t i = 0; i < p.block * 256; i++)
        w[i] = pattern(lba + i / 128, i % 128, generation[x->block]);
}

static int check(struct slot *x)
{
    const uint32_t *w = (const uint32_t *)x->buffer;
    uint32_t lba = block_lba(x->block);
    for (uint32_t i = 0; i < p.block * 256; i++)
        if (w[i] != pattern(lba + i / 128, i % 128, generation[x->block]))
            return 0;
    return 1;
}

static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* ---- a phase: `ops` requests, `qd` of them in flight ---------------------------- */

static uint32_t errors;

static int in_flight(uint32_t block)
{
    for (uint32_t i = 0; i < p.qd; i++)
        if (slots[i].busy && slots[i].block == block)
            return 1;
    return 0;
}

static void phase(const char *label, int write, int random, int verify, uint32_t ops)
{
    uint32_t blocks = p.kib / p.block, issued = 0, done = 0, bad = 0, busy = 0;
    uint64_t t0 = now_ns();
    while (done < ops) {
        for (uint32_t s = 0; s < p.qd && issued < ops; s++) {
            struct slot *x = &slots[s];
            if (x->busy)
                continue;
            uint32_t block = issued % blocks;
            if (random)
                do block = next_random() % blocks; while (in_flight(block));
            *x = (struct slot){ 1, write, 0, block, buffers + s * p.block * 1024 };
            if (write) {
                generation[block]++;
                fill(x);
            }
            start(s);
            issued++;
            busy++;
        }
        /* Collect what finished: one blocking wait, then whatever else is done,
         * so the next round of requests goes to the device in one batch. */
        for (int s = finish(1); s >= 0; s = finish(0)) {
            struct slot *x = &slots[s];
            x->busy = 0;
            busy--;
            done++;
            if (!x->ok || (verify && !write && !check(x)))
                bad++;
        }
    }
    uint64_t ns = now_ns() - t0;
    errors += bad;
    kprintf("diskbench: %-10s %u x %u KiB %s", label, ops, p.block,
            bad ? "FAILED" : verify ? "verified" : "ok");
    if (bad)
        kprintf(" (%u bad)", bad);
    if (on_sandbox && ns >= 1000) {
        uint32_t us = div64(ns, 1000);
        uint64_t scaled = (uint64_t)ops * p.block * 1000000u;
        if ((uint32_t)(scaled >> 32) < us)              /* the quotient fits 32 bits */
            kprintf(", %u KiB/s, %u us/op (guest time)", div64(scaled, us), us / ops);
    }
    kprintf("\n");
}

static void flush_phase(void)
{
    uint64_t t0 = now_ns();
    int ok = flush() == 0;
    uint32_t us = div64(now_ns() - t0, 1000);
    errors += !ok;
    kprintf("diskbench: flush      %s", ok ? "ok" : "FAILED");
    if (on_sandbox)
        kprintf(", %u us (guest time)", us);
    kprintf("\n");
}

/* ---- main ---------------------------------------------------------------------- */

void kmain(uint32_t magic, struct multiboot_info *mbi)
{
    load_flat_gdt();
    console_init(0);
    if (magic != MULTIBOOT_BOOT_MAGIC) {
        kprintf("diskbench: not started by a Multiboot loader, halting\n");
        halt_forever();
    }
    if (mbi->flags & MB_INFO_CMDLINE)
        parse_params((const char *)mbi->cmdline);
    kprintf("diskbench: booted by %s\n",
            (mbi->flags & MB_INFO_LOADER_NAME) ? (const char *)mbi->boot_loader_name : "?");
    kprintf("diskbench: kib=%u block=%u ops=%u qd=%u seed=%u mode=%s\n",
            p.kib, p.block, p.ops, p.qd, p.seed, p.mode);
    on_sandbox = hypervisor_present();
    rng = p.seed ? p.seed : 1;
    setup_interrupts();

    if (vblk_probe(p.wait[0] == 'i')) {
        virtio = 1;
        disk_sectors = vblk_sectors();
    } else if (atapio_probe()) {
        disk_sectors = atapio_sectors();
    } else {
        kprintf("diskbench: no disk, powering off\n");
        poweroff();
    }
    if (!virtio || p.qd < 1)
        p.qd = 1;                       /* ATA runs one command at a time */
    if (p.qd > VBLK_MAX_INFLIGHT)
        p.qd = VBLK_MAX_INFLIGHT;
    if (p.block < 1 || p.block > BUFFER_KIB)
        p.block = 4;
    if (p.qd * p.block > BUFFER_KIB)
        p.qd = BUFFER_KIB / p.block;
    uint32_t room = disk_sectors > p.start ? (disk_sectors - p.start) / 2 : 0;     /* KiB */
    if (p.kib > room)
        p.kib = room;
    if (p.kib / p.block > MAX_BLOCKS)
        p.kib = MAX_BLOCKS * p.block;
    kprintf("diskbench: %s, %u sectors, queue depth %u; region %u KiB at sector %u\n",
            virtio ? "virtio-blk" : "ata0", disk_sectors, p.qd, p.kib, p.start);
    if (p.kib < p.block) {
        kprintf("diskbench: the disk is too small for the region, powering off\n");
        poweroff();
    }

    uint32_t blocks = p.kib / p.block;
    if (!strcmp(p.mode, "verify")) {
        phase("seq-write", 1, 0, 0, blocks);
        flush_phase();
        phase("seq-read", 0, 0, 1, blocks);
        phase("rand-write", 1, 1, 0, p.ops);
        flush_phase();
        phase("rand-read", 0, 1, 1, p.ops);
    } else {
        int random = !strcmp(p.mode, "randread");
        for (uint32_t n = 1; p.reports == 0 || n <= p.reports; n++)
            phase(random ? "rand-read" : "seq-read", 0, random, 0, random ? p.ops : blocks);
    }
    kprintf("diskbench: done, %u errors, powering off\n", errors);
    poweroff();
}
