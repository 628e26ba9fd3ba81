/*
 * crash.S - a boot sector that dies of a triple fault, on purpose.
 *
 * When the CPU cannot deliver an exception it raises a double fault (#DF,
 * vector 8); when it cannot deliver the double fault either, it gives up:
 * a "triple fault" puts the processor into shutdown, and a PC reacts by
 * resetting. QEMU with -no-reboot exits instead; the sandbox stops the VM
 * with the reason "triple fault".
 *
 * Recipe: enter 32-bit protected mode, say goodbye on COM1, load an IDT whose
 * limit is 0 (no gate fits in it), and divide by zero:
 *   #DE (vector 0) -> gate beyond the IDT limit -> #GP
 *   #GP            -> gate beyond the limit too -> #DF
 *   #DF            -> gate beyond the limit too -> shutdown (triple fault)
 */

#define COM1 0x3F8

    .code16
    .text
    .globl _start
_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    $0x7C00, %sp
    ljmp    $0, $1f
1:
    inb     $0x92, %al          /* fast A20 on */
    orb     $0x02, %al
    andb    $0xFE, %al
    outb    %al, $0x92
    lgdt    gdt_descriptor      /* flat code 0x08 / data 0x10, as in hello.S */
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmp    $0x08, $protected

    .code32
protected:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    $0x7C00, %esp

    /* COM1: 115200 8N1 (see hello.S for the register meanings). */
    movw    $COM1 + 1, %dx
    movb    $0x00, %al
    outb    %al, %dx
    movw    $COM1 + 3, %dx
    movb    $0x80, %al
    outb    %al, %dx
    movw    $COM1 + 0, %dx
    movb    $0x01, %al
    outb    %al, %dx
    movw    $COM1 + 1, %dx
    movb    $0x00, %al
    outb    %al, %dx
    movw    $COM1 + 3, %dx
    movb    $0x03, %al
    outb    %al, %dx
    movw    $COM1 + 2, %dx
    movb    $0xC7, %al
    outb    %al, %dx

    movl    $msg_crash, %esi
    call    serial_print

    /* The fatal part. */
    lidt    empty_idt
    xorl    %ecx, %ecx
    divl    %ecx                /* #DE, and nowhere to deliver it */

    /* Unreachable on a correct CPU model: report and exit with a code. */
    movl    $msg_alive, %esi
    call    serial_print
    movb    $0x10, %al          /* QEMU isa-debug-exit: exit status 0x21 */
    outb    %al, $0xF4
2:  cli
    hlt
    jmp     2b

/* serial_print: send the NUL-terminated string at ESI to COM1. */
serial_print:
    lodsb
    testb   %al, %al
    jz      2f
    movb    %al, %ah
    movw    $COM1 + 5, %dx
1:  inb     %dx, %al
    testb   $0x20, %al          /* LSR bit 5: transmitter ready */
    jz      1b
    movw    $COM1, %dx
    movb    %ah, %al
    outb    %al, %dx
    jmp     serial_print
2:  ret

    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1
    .long   gdt
empty_idt:
    .word   0                   /* limit 0: not even one 8-byte gate fits */
    .long   0

msg_crash:  .asciz "crash: loading an empty IDT and dividing by zero: triple fault ahead\r\n"
msg_alive:  .asciz "crash: still alive after the triple fault?!\r\n"

    .org    510
    .word   0xAA55
