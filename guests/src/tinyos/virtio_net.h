/* virtio_net.h - a small virtio-net driver (virtio 1.2, MMIO transport).
 *
 * Self-contained: it needs only the shared lib (io.h, string.h), so tinyos and the
 * router guest both use it. The card sits in virtio-MMIO slot 1 (the sandbox puts
 * slot n at 0xD0000000 + n * 0x1000, interrupt line 10, 11, 5, 9 for slots 0-3,
 * as Firecracker tells Linux with virtio_mmio.device= on its command line).
 * Where no device answers (QEMU's PC, a VM without a NIC) vnet_probe() says 0.
 */
#ifndef VIRTIO_NET_H
#define VIRTIO_NET_H

#include <stdint.h>

#define VNET_SLOT 1
#define VNET_MTU 1500
#define VNET_FRAME_MAX 1518             /* 1500 + Ethernet header + an 802.1Q tag */

struct vnet_stats {
    uint32_t tx_frames, rx_frames, tx_full, interrupts;
};

int vnet_probe(void);                   /* 1: a card answered and is ready */
int vnet_irq(void);                     /* its interrupt line */
const uint8_t *vnet_mac(void);          /* from the device's configuration space */
const struct vnet_stats *vnet_stats(void);

/* Send one Ethernet frame (padded to 60 bytes here). 0 on success, -1 if every
 * transmit buffer is still in flight. Safe from interrupt handlers. */
int vnet_send(const uint8_t *frame, uint32_t len);

/* Who gets the received frames (the network stack: net_input in net.h). */
typedef void (*vnet_receiver)(const uint8_t *frame, uint32_t len);
void vnet_set_receiver(vnet_receiver receiver);

/* The interrupt handler: acknowledge, then pass each received frame to the
 * receiver and give its buffer back to the card. */
void vnet_interrupt(void);

#endif
