/*
 * boot.S - lab 1: print "Hello from <your name>" on COM1, then power off.
 *
 * The BIOS loads this sector to 0x7C00 and jumps to _start in 16-bit real mode.
 * Assemble with GNU as (AT&T syntax: source first, destination second).
 */

#define COM1 0x3F8

    .code16
    .text
    .globl _start
_start:
    cli
    xorw    %ax, %ax            /* DS = SS = 0: offsets are physical addresses */
    movw    %ax, %ds
    movw    %ax, %ss
    movw    $0x7C00, %sp

    /* TODO 1: print the message below on COM1, one byte at a time.
     *         (lodsb loads the byte at DS:SI into AL and advances SI.) */

    /* TODO 2: power off: write 0x2000 to port 0x604 with outw. */

hang:
    jmp     hang                /* replace me: a guest that loops forever never powers off */

message:
    .asciz  "Hello from YOUR NAME HERE\r\n"

    .org    510
    .word   0xAA55              /* the boot signature */
