/*
 * ata.c - the primary ATA (IDE) disk, programmed I/O, 28-bit LBA, polled.
 *
 * Registers at 0x1F0-0x1F7 (and the control register at 0x3F6):
 *   0x1F0 data (16-bit)   0x1F2 sector count   0x1F3-5 LBA bits 0-23
 *   0x1F6 drive/head: 0xE0 | LBA bits 24-27 (master, LBA mode)
 *   0x1F7 status (read) / command (write)
 * To read a sector: wait until not busy, write the registers and command
 * 0x20 (READ SECTORS), wait for DRQ ("data request"), read 256 words.
 * We set nIEN so the drive does not raise IRQ 14; polling is simpler here.
 */
#include "io.h"
#include "tinyos.h"

#define ATA_DATA    0x1F0
#define ATA_COUNT   0x1F2
#define ATA_LBA0    0x1F3
#define ATA_LBA1    0x1F4
#define ATA_LBA2    0x1F5
#define ATA_DRIVE   0x1F6
#define ATA_STATUS  0x1F7
#define ATA_COMMAND 0x1F7
#define ATA_CONTROL 0x3F6   /* write: device control; read: alternate status */

#define ST_BSY 0x80
#define ST_DF  0x20
#define ST_DRQ 0x08
#define ST_ERR 0x01

#define CMD_READ_SECTORS 0x20
#define CMD_IDENTIFY     0xEC

#define POLL_LIMIT 1000000  /* give up on a drive that never answers */

static int present;
static uint32_t total_sectors;

/* Wait until BSY clears; returns the status, or -1 on timeout. */
static int wait_idle(void)
{
    for (int i = 0; i < POLL_LIMIT; i++) {
        uint8_t status = inb(ATA_STATUS);
        if (!(status & ST_BSY))
            return status;
    }
    return -1;
}

/* Wait for DRQ (data ready) or an error; returns 0 when data is ready. */
static int wait_data(void)
{
    for (int i = 0; i < POLL_LIMIT; i++) {
        uint8_t status = inb(ATA_STATUS);
        if (status & ST_BSY)
            continue;
        if (status & (ST_ERR | ST_DF))
            return -1;
        if (status & ST_DRQ)
            return 0;
    }
    return -1;
}

static void read_words(uint16_t *buffer)
{
    for (int i = 0; i < 256; i++)
        buffer[i] = inw(ATA_DATA);
}

int ata_init(void)
{
    uint16_t identify[256];

    outb(ATA_CONTROL, 0x02);            /* nIEN: no interrupts from the drive */
    outb(ATA_DRIVE, 0xA0);              /* select the master */
    for (int i = 0; i < 4; i++)         /* the customary 400 ns settle delay */
        inb(ATA_CONTROL);
    uint8_t status = inb(ATA_STATUS);
    if (status == 0x00 || status == 0xFF)   /* nothing there / no controller */
        return present = 0;

    outb(ATA_COUNT, 0);
    outb(ATA_LBA0, 0);
    outb(ATA_LBA1, 0);
    outb(ATA_LBA2, 0);
    outb(ATA_COMMAND, CMD_IDENTIFY);
    if (inb(ATA_STATUS) == 0 || wait_idle() < 0)
        return present = 0;
    if (inb(ATA_LBA1) || inb(ATA_LBA2))     /* an ATAPI (CD-ROM) signature */
        return present = 0;
    if (wait_data() < 0)
        return present = 0;
    read_words(identify);
    total_sectors = identify[60] | (uint32_t)identify[61] << 16;   /* LBA28 capacity */
    return present = 1;
}

int ata_present(void)
{
    return present;
}

uint32_t ata_sectors(void)
{
    return total_sectors;
}

int ata_read(uint32_t lba, void *buffer)
{
    if (!present || lba >= total_sectors || wait_idle() < 0)
        return -1;
    outb(ATA_DRIVE, 0xE0 | ((lba >> 24) & 0x0F));
    outb(ATA_COUNT, 1);
    outb(ATA_LBA0, lba & 0xFF);
    outb(ATA_LBA1, (lba >> 8) & 0xFF);
    outb(ATA_LBA2, (lba >> 16) & 0xFF);
    outb(ATA_COMMAND, CMD_READ_SECTORS);
    if (wait_data() < 0)
        return -1;
    read_words(buffer);
    return 0;
}
