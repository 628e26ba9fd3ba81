/*
 * memguest_isr.S - the memory guests' GDT and interrupt handlers.
 *
 * Only the timer interrupt does anything (it counts ticks); CPU exceptions go
 * to C, which reports and halts; every other IRQ is masked and ignored.
 */

    .text

/* Our own flat GDT, then reload every segment register from it. */
    .globl memguest_load_gdt
memguest_load_gdt:
    lgdt    gdt_descriptor
    ljmp    $0x08, $1f
1:  movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    ret

/* IRQ 0: count the tick, end of interrupt at the PIC, return. */
    .globl memguest_timer
memguest_timer:
    pushl   %eax
    incl    ticks
    movb    $0x20, %al
    outb    %al, $0x20
    popl    %eax
    iret

/* A spurious IRQ 7 or 15 needs no end of interrupt. */
    .globl memguest_ignore
memguest_ignore:
    iret

    .globl memguest_fault
memguest_fault:
    call    memguest_exception

    .data
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
