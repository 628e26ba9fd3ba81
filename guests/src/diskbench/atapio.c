/*
 * atapio.c - the primary ATA disk for diskbench: programmed I/O, LBA28, and
 * interrupts, so that the CPU sleeps while the disk is busy.
 *
 * Compare ../tinyos/ata.c, which polls with interrupts off: fine for a few
 * sectors at boot, but every poll of the status register is an exit, and a hard
 * disk is busy for milliseconds. Here the wait is "sti; hlt" until IRQ 14.
 * Data still moves through the data port: one IN or OUT (one exit) per 32 bits,
 * 128 of them per sector. That is what an emulated disk costs.
 */
#include "atapio.h"
#include "io.h"

#define ATA_DATA    0x1F0
#define ATA_COUNT   0x1F2
#define ATA_LBA0    0x1F3
#define ATA_LBA1    0x1F4
#define ATA_LBA2    0x1F5
#define ATA_DRIVE   0x1F6
#define ATA_STATUS  0x1F7   /* reading it acknowledges the interrupt */
#define ATA_COMMAND 0x1F7
#define ATA_CONTROL 0x3F6   /* write: device control; read: alternate status */

#define ST_BSY 0x80
#define ST_DF  0x20
#define ST_DRQ 0x08
#define ST_ERR 0x01

#define CMD_READ_SECTORS  0x20
#define CMD_WRITE_SECTORS 0x30
#define CMD_FLUSH_CACHE   0xE7
#define CMD_IDENTIFY      0xEC

static uint32_t total_sectors;

/* One IN or OUT per word rather than "rep insl": the same exits, and Unicorn 2.1.4
 * loses a "rep ins" iteration when the hypervisor stops the vCPU inside it (to
 * deliver the interrupt the last word of a sector raises). */
static inline uint32_t inl(uint16_t port)
{
    uint32_t value;
    __asm__ volatile("inl %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

static inline void outl(uint16_t port, uint32_t value)
{
    __asm__ volatile("outl %0, %1" : : "a"(value), "Nd"(port));
}

void atapio_interrupt(void)
{
    inb(ATA_STATUS);                    /* acknowledge: the drive lowers IRQ 14 */
}

/* Wait until the drive is not busy, sleeping until its interrupt meanwhile.
 * Interrupts are off between the check and the HLT ("sti; hlt" is atomic), so
 * an interrupt arriving after the check still wakes us. */
static uint8_t wait_ready(void)
{
    for (;;) {
        cli();
        uint8_t status = inb(ATA_CONTROL);      /* alternate status: no acknowledge */
        if (!(status & ST_BSY)) {
            sti();
            return status;
        }
        sti_hlt();
    }
}

static int wait_data(void)
{
    uint8_t status = wait_ready();
    return (status & (ST_ERR | ST_DF)) || !(status & ST_DRQ) ? -1 : 0;
}

int atapio_probe(void)
{
    uint16_t identify[256];

    outb(ATA_CONTROL, 0x00);            /* interrupts on (nIEN clear) */
    outb(ATA_DRIVE, 0xA0);
    uint8_t status = inb(ATA_CONTROL);
    if (status == 0x00 || status == 0xFF)
        return 0;
    outb(ATA_COMMAND, CMD_IDENTIFY);
    if (inb(ATA_CONTROL) == 0 || wait_data() < 0)
        return 0;
    for (int i = 0; i < 256; i++)
        identify[i] = inw(ATA_DATA);
    total_sectors = identify[60] | (uint32_t)identify[61] << 16;
    return 1;
}

uint32_t atapio_sectors(void)
{
    return total_sectors;
}

/* One command: at most 256 sectors (a count of 0 means 256). */
static int command(int write, uint32_t lba, uint32_t count, uint8_t *buffer)
{
    wait_ready();
    outb(ATA_DRIVE, 0xE0 | ((lba >> 24) & 0x0F));
    outb(ATA_COUNT, count & 0xFF);
    outb(ATA_LBA0, lba & 0xFF);
    outb(ATA_LBA1, (lba >> 8) & 0xFF);
    outb(ATA_LBA2, (lba >> 16) & 0xFF);
    outb(ATA_COMMAND, write ? CMD_WRITE_SECTORS : CMD_READ_SECTORS);
    for (uint32_t i = 0; i < count; i++, buffer += 512) {
        if (wait_data() < 0)
            return -1;
        uint32_t *words = (uint32_t *)buffer;  /* 32-bit transfers: 128 per sector */
        for (int n = 0; n < 128; n++) {
            if (write)
                outl(ATA_DATA, words[n]);
            else
                words[n] = inl(ATA_DATA);
        }
    }
    /* After a write the drive is busy until the data is on the disk. */
    return wait_ready() & (ST_ERR | ST_DF) ? -1 : 0;
}

int atapio_rw(int write, uint32_t lba, uint32_t count, void *buffer)
{
    uint8_t *p = buffer;
    while (count) {
        uint32_t n = count > 256 ? 256 : count;
        if (command(write, lba, n, p) < 0)
            return -1;
        lba += n;
        count -= n;
        p += n * 512;
    }
    return 0;
}

int atapio_flush(void)
{
    wait_ready();
    outb(ATA_COMMAND, CMD_FLUSH_CACHE);
    return wait_ready() & (ST_ERR | ST_DF) ? -1 : 0;
}
