/*
 * router_isr.S - the router's GDT and its three kinds of interrupt entry.
 *
 * The router needs no timer: it sleeps in HLT until its network card
 * interrupts. CPU exceptions go to C, which reports and halts; the NIC's IRQ
 * saves the registers, calls router_nic_interrupt() (which also sends the end
 * of interrupt) and returns; any other IRQ is ignored.
 */

    .text

/* A flat GDT of our own (the Multiboot loader's may be anywhere), then reload
 * every segment register from it. */
    .globl router_load_gdt
router_load_gdt:
    lgdt    gdt_descriptor
    ljmp    $0x08, $1f
1:  movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    ret

    .globl router_nic_entry
router_nic_entry:
    pushal
    cld
    call    router_nic_interrupt
    popal
    iret

    .globl router_ignore_entry
router_ignore_entry:
    iret

    .globl router_fault_entry
router_fault_entry:
    call    router_exception

    .data
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
