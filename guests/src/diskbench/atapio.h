/* atapio.h - the primary ATA disk, PIO, LBA28, sleeping on IRQ 14 while it is busy. */
#ifndef DISKBENCH_ATAPIO_H
#define DISKBENCH_ATAPIO_H

#include <stdint.h>

#define ATA_IRQ 14

int atapio_probe(void);                 /* 1 if a disk answers IDENTIFY */
uint32_t atapio_sectors(void);
/* Read (write = 0) or write `count` sectors at `lba`; 0 on success. */
int atapio_rw(int write, uint32_t lba, uint32_t count, void *buffer);
int atapio_flush(void);                 /* FLUSH CACHE; 0 on success */
void atapio_interrupt(void);            /* from the IRQ 14 handler */

#endif
