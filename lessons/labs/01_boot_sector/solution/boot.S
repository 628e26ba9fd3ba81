/*
 * boot.S - lab 1 reference solution: greet on COM1, power off through ACPI.
 */

#define COM1 0x3F8

    .code16
    .text
    .globl _start
_start:
    cli
    xorw    %ax, %ax
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $0x7C00, %sp

    movw    $message, %si
next:
    lodsb                       /* AL = next byte, SI += 1 */
    testb   %al, %al
    jz      off
    movb    %al, %ah
    movw    $COM1 + 5, %dx      /* line status register */
wait:
    inb     %dx, %al
    testb   $0x20, %al          /* bit 5: transmitter holding register empty */
    jz      wait
    movw    $COM1, %dx
    movb    %ah, %al
    outb    %al, %dx
    jmp     next

off:
    movw    $0x604, %dx         /* ACPI PM1a control: SLP_EN | SLP_TYP 0 = soft off */
    movw    $0x2000, %ax
    outw    %ax, %dx
halt:
    hlt
    jmp     halt

message:
    .asciz  "Hello from Grace Hopper\r\n"

    .org    510
    .word   0xAA55
