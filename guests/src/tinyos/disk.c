/*
 * disk.c - the boot disk: virtio-blk when the hypervisor offers one, else ATA.
 *
 * tinyos probes virtio-MMIO slot 0 (0xD0000000) for the magic "virt": the sandbox
 * puts a virtio-blk device there when the VM's config says disk_bus = "virtio".
 * QEMU's PC has nothing at that address, so under QEMU tinyos uses the ATA disk.
 * The driver polls its ring (no interrupt), like ata.c polls the status register,
 * but the wait costs no exits: the ring is in guest memory.
 */
#include "console.h"
#include "tinyos.h"
#include "virtio_blk.h"

enum { BUS_NONE, BUS_ATA, BUS_VIRTIO };
static int bus;

void disk_init(void)
{
    if (vblk_probe(0)) {
        bus = BUS_VIRTIO;
        kprintf("virtio-blk: disk of %u sectors at 0xd0000000\n", vblk_sectors());
    } else if (ata_init()) {
        bus = BUS_ATA;
        kprintf("ata0: disk of %u sectors\n", ata_sectors());
    } else {
        kprintf("ata0: no disk\n");
    }
}

int disk_present(void)
{
    return bus != BUS_NONE;
}

int disk_read(uint32_t lba, void *buffer)
{
    return bus == BUS_VIRTIO ? vblk_rw(0, lba, 1, buffer) : ata_read(lba, buffer);
}
