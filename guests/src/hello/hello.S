/*
 * hello.S - the smallest complete guest: one 512-byte boot sector.
 *
 * What a PC BIOS does at power-on: it reads sector 0 (LBA 0) of the boot disk
 * to physical address 0x7C00, checks that bytes 510-511 are 0x55 0xAA, and
 * jumps there in 16-bit real mode with DL = the BIOS drive number.
 *
 * This sector then walks the classic path of every PC operating system:
 *   1. real mode: print a line through the BIOS (int 0x10, AH=0x0E teletype)
 *   2. enable the A20 address line ("fast A20", port 0x92)
 *   3. load a Global Descriptor Table and set CR0.PE: 32-bit protected mode
 *   4. program the COM1 serial port and print a greeting on it
 *   5. write the greeting into VGA text memory at 0xB8000
 *   6. power off through ACPI (write 0x2000 to the PM1a control port 0x604)
 *
 * Build: as --32, linked at 0x7C00 into a flat binary (see sandbox/guestbuild.py).
 */

#define COM1 0x3F8

    .code16
    .text
    .globl _start
_start:
    cli
    xorw    %ax, %ax            /* segments = 0 so that offsets are physical addresses */
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %ss
    movw    $0x7C00, %sp        /* stack grows down from just below us */
    ljmp    $0, $real_start     /* some BIOSes enter at 07C0:0000; make CS = 0 */

real_start:
    sti
    movw    $msg_bios, %si
    call    bios_print

    /* Step 2: A20. With A20 off, address bit 20 is forced to 0 (8086
     * compatibility) and every odd megabyte aliases the even one below it.
     * Bit 1 of the "system control port A" turns it on; bit 0 would reset
     * the machine, so we keep it clear. */
    inb     $0x92, %al
    orb     $0x02, %al
    andb    $0xFE, %al
    outb    %al, $0x92

    /* Step 3: protected mode. Interrupts stay off from here on: the BIOS
     * interrupt handlers are real-mode code and we have no IDT. */
    cli
    lgdt    gdt_descriptor
    movl    %cr0, %eax
    orl     $1, %eax            /* CR0.PE: protection enable */
    movl    %eax, %cr0
    ljmp    $0x08, $protected   /* a far jump loads CS with our code segment */

/* bios_print: print the NUL-terminated string at DS:SI with int 0x10 teletype. */
bios_print:
    lodsb
    testb   %al, %al
    jz      1f
    movb    $0x0E, %ah          /* AH=0x0E: teletype output of AL */
    movw    $0x0007, %bx        /* page 0, grey */
    int     $0x10
    jmp     bios_print
1:  ret

    .code32
protected:
    movw    $0x10, %ax          /* every data segment register = flat data segment */
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    movl    $0x7C00, %esp

    /* Step 4: the usual 8250/16550 initialisation of COM1. */
    movw    $COM1 + 1, %dx
    movb    $0x00, %al          /* IER: no interrupts */
    outb    %al, %dx
    movw    $COM1 + 3, %dx
    movb    $0x80, %al          /* LCR: DLAB=1, ports +0/+1 hold the baud divisor */
    outb    %al, %dx
    movw    $COM1 + 0, %dx
    movb    $0x01, %al          /* divisor 1 = 115200 baud */
    outb    %al, %dx
    movw    $COM1 + 1, %dx
    movb    $0x00, %al
    outb    %al, %dx
    movw    $COM1 + 3, %dx
    movb    $0x03, %al          /* LCR: 8 data bits, no parity, 1 stop bit, DLAB=0 */
    outb    %al, %dx
    movw    $COM1 + 2, %dx
    movb    $0xC7, %al          /* FCR: enable and clear the FIFOs */
    outb    %al, %dx
    movw    $COM1 + 4, %dx
    movb    $0x03, %al          /* MCR: DTR and RTS */
    outb    %al, %dx

    movl    $msg_serial, %esi   /* no NUL until the end: prints all three lines */
    call    serial_print

    /* Step 5: VGA text memory. Each cell is a character byte and a colour
     * byte (0x1F = white on blue); row 10 starts at 0xB8000 + 10*80*2. */
    movl    $msg_hello, %esi
    movl    $0xB8000 + 10 * 160, %edi
    movb    $0x1F, %ah
1:  lodsb
    cmpb    $'\r', %al          /* stop at the end of the first line */
    je      2f
    stosw
    jmp     1b
2:
    /* Step 6: ACPI soft-off. SLP_TYP=0 (bits 10-12) | SLP_EN (bit 13). */
    movw    $0x604, %dx
    movw    $0x2000, %ax
    outw    %ax, %dx
    /* The power-off takes effect a moment later; stop the CPU meanwhile. */
halt:
    cli
    hlt
    jmp     halt

/* serial_print: send the NUL-terminated string at ESI to COM1. */
serial_print:
    lodsb
    testb   %al, %al
    jz      2f
    movb    %al, %ah
    movw    $COM1 + 5, %dx      /* LSR: wait for "transmitter holding register empty" */
1:  inb     %dx, %al
    testb   $0x20, %al
    jz      1b
    movw    $COM1, %dx
    movb    %ah, %al
    outb    %al, %dx
    jmp     serial_print
2:  ret

/* The GDT: null descriptor, flat 4 GiB code (selector 0x08), flat data (0x10).
 * Each descriptor packs base, limit and flags; 0x00CF9A000000FFFF reads as
 * base 0, limit 0xFFFFF pages, present, ring 0, code, 32-bit. */
    .p2align 3
gdt:
    .quad   0x0000000000000000
    .quad   0x00CF9A000000FFFF
    .quad   0x00CF92000000FFFF
gdt_descriptor:
    .word   gdt_descriptor - gdt - 1    /* limit */
    .long   gdt                         /* base */

msg_bios:   .asciz "hello: real mode, BIOS teletype\r\n"
msg_serial: .ascii "hello: protected mode, COM1 115200 8N1\r\n"
msg_hello:  .ascii "Hello from the guest!\r\n"
            .asciz "hello: powering off (ACPI 0x604)\r\n"

    .org    510
    .word   0xAA55              /* the boot signature the BIOS checks */
