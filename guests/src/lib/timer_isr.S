/*
 * timer_isr.S - IRQ 0, the PIT: count the tick in the guest's `ticks`
 * variable (defined in its C code), acknowledge the PIC, return.
 */

    .text
    .globl timer_interrupt
timer_interrupt:
    pushl   %eax
    incl    ticks
    movb    $0x20, %al          /* non-specific end of interrupt */
    outb    %al, $0x20
    popl    %eax
    iret
