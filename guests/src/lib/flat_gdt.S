/*
 * flat_gdt.S - what every small protected-mode guest needs first: its own flat
 * GDT, and the interrupt entry points that do not depend on the guest.
 *
 *   load_flat_gdt        load our GDT (never trust the boot loader's to stay in
 *                        memory) and reload every segment register from it
 *   ignore_interrupt     for IRQs the guest does not use: a spurious IRQ 7 or 15
 *                        from the PIC needs no end of interrupt
 *   exception_interrupt  any CPU exception: report it from C, in
 *                        guest_exception(), which never returns
 *
 * Used by cpuhog, diskbench, router and the memory guests (tinyos has its own,
 * richer entry code: it saves the full register state to switch tasks).
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

    .globl ignore_interrupt
ignore_interrupt:
    iret

/* The exception number is not known here (one handler for all 32 vectors); the
 * saved EIP is on the stack, at least for the exceptions without an error code. */
    .globl exception_interrupt
exception_interrupt:
    call    guest_exception

    .data
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
