/*
 * interrupts.S - cpuhog's flat GDT and its two interrupt handlers.
 *
 * cpuhog needs only the timer interrupt (to sleep) and a catch-all for CPU
 * exceptions, so the handlers are tiny. Compare tinyos/isr.S, where every
 * interrupt saves the full register state so that tasks can be switched.
 */

    .text

/* load_flat_gdt: our own GDT (never trust the boot loader's to stay in
 * memory), then reload every segment register from it. */
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

/* IRQ 0, the PIT: count the tick, acknowledge the PIC, return. */
    .globl timer_interrupt
timer_interrupt:
    pushl   %eax
    incl    ticks
    movb    $0x20, %al          /* non-specific end of interrupt */
    outb    %al, $0x20
    popl    %eax
    iret

/* Every other IRQ is masked at the PIC, but the PIC can still signal a
 * "spurious" IRQ 7 or 15 on a glitch. Ignore it: no EOI for those. */
    .globl ignore_interrupt
ignore_interrupt:
    iret

/* Any CPU exception: report it from C, which never returns. The exception
 * number is not known here (one handler for all 32 vectors); the saved EIP
 * is on the stack, at least for the exceptions without an error code. */
    .globl exception_interrupt
exception_interrupt:
    call    cpuhog_exception

    .data
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
