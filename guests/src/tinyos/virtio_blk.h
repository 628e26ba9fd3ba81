/* virtio_blk.h - a small virtio-blk driver (virtio 1.2, MMIO transport).
 *
 * Self-contained: it needs only the shared lib (io.h), so tinyos and the diskbench
 * guest both use it. The disk sits in virtio-MMIO slot 0: 0xD0000000, interrupt
 * line 10 (the sandbox's fixed slots, as Firecracker tells Linux with
 * virtio_mmio.device= on its command line). Where no device answers (QEMU's PC, a
 * VM with disk_bus = "ata") vblk_probe() says 0 and the caller uses ATA.
 *
 * Requests are asynchronous: vblk_start() queues one, vblk_kick() tells the device
 * about everything queued (one exit for the whole batch), vblk_poll() collects the
 * finished ones. vblk_rw() and vblk_flush() do all three and wait.
 */
#ifndef VIRTIO_BLK_H
#define VIRTIO_BLK_H

#include <stdint.h>

#define VBLK_SLOT 0
#define VBLK_IRQ 10
#define VBLK_SECTOR 512
#define VBLK_MAX_INFLIGHT 8             /* requests in flight at once (3 descriptors each) */

enum { VBLK_OK = 0, VBLK_IOERR = 1, VBLK_UNSUPP = 2 };

/* Find and start the device. With interrupts = 0 the device is asked not to
 * interrupt (the driver polls its ring); with 1 it raises VBLK_IRQ per batch. */
int vblk_probe(int interrupts);
uint32_t vblk_sectors(void);            /* capacity (below 2 TiB) */
int vblk_readonly(void);

/* Queue a read (write = 0) or write of `count` sectors at `lba` from/to `buffer`.
 * Returns a tag (0..VBLK_MAX_INFLIGHT-1), or -1 when every slot is in flight. */
int vblk_start(int write, uint32_t lba, uint32_t count, void *buffer);
int vblk_start_flush(void);
void vblk_kick(void);                   /* QueueNotify: the one exit per batch */
int vblk_poll(int *status);             /* a finished tag (status filled in), or -1 */
int vblk_done_waiting(void);            /* 1 if the used ring holds a finished request */
int vblk_inflight(void);

/* While waiting, the driver calls idle() (default: nothing, it spins on the ring). */
void vblk_set_idle(void (*idle)(void));
int vblk_rw(int write, uint32_t lba, uint32_t count, void *buffer);   /* 0 on success */
int vblk_flush(void);                   /* 0 once every completed write is durable */

/* From the interrupt handler: acknowledge the device's interrupt. */
void vblk_interrupt(void);

#endif
