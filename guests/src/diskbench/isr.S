/*
 * isr.S - diskbench's flat GDT and its interrupt entry points.
 *
 * diskbench sleeps (HLT) while a disk request is in flight, so it needs the disk
 * interrupts: IRQ 14 (ATA) and IRQ 10 (virtio-blk, slot 0), plus the timer. Each
 * disk stub saves the registers, calls the C handler, and returns.
 */

    .text

    .globl load_flat_gdt
load_flat_gdt:
    lgdt    gdt_descriptor
    ljmp    $0x08, $1f          /* reload CS */
1:  movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    ret

/* IRQ 0, the PIT at 1 kHz: a backstop. A wait is "cli; check; sti; hlt", which
 * never misses the disk's interrupt on a PC; should a hypervisor ever deliver one
 * between the STI and the HLT, the next tick still wakes us within a millisecond. */
    .globl timer_interrupt
timer_interrupt:
    pushl   %eax
    incl    ticks
    movb    $0x20, %al          /* non-specific end of interrupt */
    outb    %al, $0x20
    popl    %eax
    iret

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

/* A spurious IRQ 7 or 15 from the PIC: ignore it (no EOI). */
    .globl ignore_interrupt
ignore_interrupt:
    iret

/* Any CPU exception: report it from C, which never returns. */
    .globl exception_interrupt
exception_interrupt:
    call    diskbench_exception

    .data
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
