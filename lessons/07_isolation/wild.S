/*
 * wild.S - a boot sector that writes where it has no memory.
 *
 * The VM has 4 MiB of RAM. In 32-bit protected mode with flat segments the
 * guest can form any physical address up to 4 GiB, so nothing in the CPU stops
 * it from storing to 0x01000000 (16 MiB). What happens there is the
 * hypervisor's decision: that guest-physical address has no RAM and no device,
 * so the store goes nowhere (open bus) and a load reads all ones. The write
 * cannot reach another VM: each VM's addresses go through its own frame table.
 *
 * For contrast, the same store and load at 0x00200000 (2 MiB, inside its RAM)
 * read back what was written.
 */

#define COM1 0x3F8
#define WILD 0x01000000         /* 16 MiB: beyond this VM's 4 MiB */
#define OWN  0x00200000         /* 2 MiB: inside it */

    .code16
    .text
    .globl _start
_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $0x7C00, %sp
    ljmp    $0, $1f
1:  inb     $0x92, %al          /* fast A20 on, so odd megabytes are reachable */
    orb     $0x02, %al
    andb    $0xFE, %al
    outb    %al, $0x92
    lgdt    gdtr
    movl    %cr0, %eax
    orl     $1, %eax            /* CR0.PE */
    movl    %eax, %cr0
    ljmp    $0x08, $flat

    .code32
flat:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movl    $0x7C00, %esp

    movl    $0x03, %eax         /* COM1 LCR: 8N1 (the virtual UART needs no baud rate) */
    movw    $COM1 + 3, %dx
    outb    %al, %dx

    movl    $msg_wild, %esi
    call    puts
    movl    $WILD, %edi
    call    poke_and_peek

    movl    $msg_own, %esi
    call    puts
    movl    $OWN, %edi
    call    poke_and_peek

    movl    $msg_bye, %esi
    call    puts
    movw    $0x604, %dx         /* ACPI soft-off */
    movw    $0x2000, %ax
    outw    %ax, %dx
2:  cli
    hlt
    jmp     2b

/* poke_and_peek: store 0xDEADBEEF at EDI, load it back, print "read back XXXXXXXX". */
poke_and_peek:
    movl    $0xDEADBEEF, (%edi)
    movl    (%edi), %ebx
    movl    $msg_read, %esi
    call    puts
    movl    $8, %ecx
1:  roll    $4, %ebx            /* the top nibble comes round to the bottom */
    movl    %ebx, %eax
    andl    $0x0F, %eax
    movb    hexdigits(%eax), %al
    call    putc
    loop    1b
    movl    $msg_crlf, %esi
    jmp     puts

/* puts: the NUL-terminated string at ESI; putc: the byte in AL. */
puts:
    lodsb
    testb   %al, %al
    jz      1f
    call    putc
    jmp     puts
1:  ret

putc:
    movw    $COM1, %dx
    outb    %al, %dx
    ret

    .p2align 3
gdt:
    .quad   0
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat data */
gdtr:
    .word   gdtr - gdt - 1
    .long   gdt

hexdigits:  .ascii "0123456789abcdef"
msg_wild:   .asciz "wild: storing 0xdeadbeef at 0x01000000, beyond my 4 MiB of RAM\r\n"
msg_own:    .asciz "wild: storing 0xdeadbeef at 0x00200000, inside my RAM\r\n"
msg_read:   .asciz "wild: read back "
msg_crlf:   .asciz "\r\n"
msg_bye:    .asciz "wild: powering off\r\n"

    .org    510
    .word   0xAA55
