/*
 * router_isr.S - the router's network interrupt entry.
 *
 * The router needs no timer: it sleeps in HLT until its network card
 * interrupts. The NIC's IRQ saves the registers, calls router_nic_interrupt()
 * (which also sends the end of interrupt) and returns. The GDT, the ignored IRQs
 * and the exception entry are in lib/flat_gdt.S.
 */

    .text

    .globl router_nic_entry
router_nic_entry:
    pushal
    cld
    call    router_nic_interrupt
    popal
    iret
