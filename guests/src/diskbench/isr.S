/*
 * isr.S - diskbench's disk interrupt entry points.
 *
 * diskbench sleeps (HLT) while a disk request is in flight, so it needs the disk
 * interrupts: IRQ 14 (ATA) and IRQ 10 (virtio-blk, slot 0). Each stub saves the
 * registers, calls the C handler, and returns. The GDT, the timer (a 1 kHz
 * backstop: should a hypervisor ever deliver an interrupt between STI and HLT, the
 * next tick still wakes us) and the exception entry are in lib/.
 */

    .text

    .globl ata_interrupt
ata_interrupt:
    pushal
    cld
    call    ata_irq
    popal
    iret

    .globl virtio_interrupt
virtio_interrupt:
    pushal
    cld
    call    virtio_irq
    popal
    iret
