/*
 * loader.S - a one-sector boot loader for a Multiboot kernel (tinyos, cpuhog).
 *
 * The BIOS loads this sector to 0x7C00 and jumps to it in real mode with
 * DL = the boot drive. In 512 bytes it does what GRUB would do:
 *
 *   1. read an optional "command line" sector to 0x7E00
 *   2. read the kernel, sector by sector, to the buffer at 0x10000. It uses
 *      the BIOS "extended read" (int 0x13 AH=0x42, by LBA) when the BIOS
 *      offers it (AH=0x41), and the old cylinder/head/sector read (AH=0x02)
 *      otherwise, with the geometry from AH=0x08
 *   3. ask the BIOS for the E820 memory map (int 0x15 AX=0xE820)
 *   4. fill in a Multiboot information structure at 0x500
 *   5. A20 on, load a GDT, enter 32-bit protected mode
 *   6. copy the kernel up to its load address (1 MiB: above real-mode reach)
 *   7. jump to the kernel's entry with EAX = 0x2BADB002, EBX = 0x500
 *
 * So the kernel cannot tell this loader from GRUB or `qemu -kernel`, except by
 * the boot_loader_name string. sandbox/guestbuild.py fills in the parameter
 * block at offset 0x1F0 (where the kernel is on the disk, where it goes).
 */

#define MBI        0x0500      /* Multiboot info structure we build          */
#define MMAP       0x1000      /* Multiboot memory map entries               */
#define CMDLINE    0x7E00      /* the command-line sector, if there is one   */
#define BUFFER_SEG 0x1000      /* real-mode segment of the 0x10000 buffer    */

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
    ljmp    $0, $1f             /* CS = 0 */
1:  sti
    cld
    movb    %dl, boot_drive
    movw    $MBI, %di           /* zero the Multiboot info and memory map area
                                   (room for 42 map entries up to 0x1400) */
    movw    $(0x1400 - MBI) / 2, %cx
    rep stosw
    movw    $msg_loading, %si
    call    print

    /* Does the BIOS support extended (LBA) disk reads? (DL = drive still) */
    movb    $0x41, %ah
    movw    $0x55AA, %bx
    int     $0x13
    jc      1f
    cmpw    $0xAA55, %bx
    jne     1f
    testb   $1, %cl             /* bit 0: "device access using the packet structure" */
    jz      1f
    incb    use_edd
1:
    /* Disk geometry for the CHS fallback: CL[5:0] = sectors per track,
     * DH = last head number. */
    movb    $0x08, %ah
    movb    boot_drive, %dl
    int     $0x13
    xorw    %ax, %ax
    movw    %ax, %es            /* AH=0x08 may change ES:DI */
    andb    $0x3F, %cl
    movb    %cl, sectors_per_track
    incb    %dh
    movb    %dh, heads          /* 256 heads wraps to 0: such disks have EDD anyway */

    /* 1. The command-line sector. */
    movw    cmdline_lba, %ax
    testw   %ax, %ax
    jz      1f
    movw    $CMDLINE >> 4, %bx
    call    read_sector
    movw    $CMDLINE, MBI + 16
    orb     $0x04, MBI          /* flags bit 2: cmdline is valid */
1:
    /* 2. The kernel. */
    movw    kernel_lba, %ax
    movw    $BUFFER_SEG, %bx
    movw    kernel_sectors, %cx
2:  call    read_sector
    incw    %ax
    addw    $512 >> 4, %bx      /* next 512 bytes = next 0x20 paragraphs */
    loop    2b
    movw    $msg_ok, %si
    call    print

    /* 3 and 4. The memory map into the Multiboot info. */
    movw    $loader_name, MBI + 64
    orw     $0x0240, MBI        /* flags: memory map, loader name */

    movw    $MMAP + 4, %di      /* each entry = 4-byte size field + 20-byte E820 record */
    xorl    %ebx, %ebx          /* continuation value: 0 = first entry */
3:  movl    $0xE820, %eax
    movl    $20, %ecx
    movl    $0x534D4150, %edx   /* 'SMAP' */
    int     $0x15
    jc      4f
    cmpl    $0x534D4150, %eax
    jne     4f
    movb    $20, -4(%di)        /* the size field (its upper bytes were zeroed) */
    addw    $24, %di
    cmpw    $0x1400, %di        /* the zeroed area is full */
    jae     4f
    testl   %ebx, %ebx          /* 0 = that was the last entry */
    jnz     3b
4:  subw    $MMAP + 4, %di
    movw    %di, MBI + 44       /* mmap_length */
    movw    $MMAP, MBI + 48     /* mmap_addr */

    /* 5. Protected mode (see hello.S for each step). */
    cli
    inb     $0x92, %al
    orb     $0x02, %al
    andb    $0xFE, %al
    outb    %al, $0x92
    lgdt    gdt_descriptor
    movl    %cr0, %eax
    orl     $1, %eax
    movl    %eax, %cr0
    ljmp    $0x08, $protected

/* read_sector: read the sector at LBA AX to BX:0000. All registers kept. */
read_sector:
    pushaw
    movb    boot_drive, %dl
    cmpb    $0, use_edd
    je      1f
    movw    %ax, dap_lba
    movw    %bx, dap_segment
    movb    $0x42, %ah
    movw    $dap, %si
    jmp     2f
1:  /* LBA -> CHS: sector = LBA % spt + 1, head = (LBA / spt) % heads,
     * cylinder = LBA / spt / heads (10 bits: 8 in CH, 2 in CL[7:6]). */
    movw    %bx, %es
    pushw   %dx
    xorw    %dx, %dx
    divw    sectors_per_track
    movb    %dl, %cl
    incb    %cl
    xorw    %dx, %dx
    divw    heads
    movb    %dl, %dh
    movb    %al, %ch
    shlb    $6, %ah
    orb     %ah, %cl
    popw    %ax
    movb    %al, %dl            /* the drive again */
    movw    $0x0201, %ax        /* AH=0x02 read, AL=1 sector */
    xorw    %bx, %bx
2:  int     $0x13
    jc      disk_error
    xorw    %ax, %ax
    movw    %ax, %es
    movw    $msg_dot, %si       /* one progress dot per sector */
    call    print
    popaw
    ret

disk_error:
    movw    $msg_error, %si
    call    print
    cli
    hlt

/* print: the NUL-terminated string at SI via int 0x10 teletype. */
print:
    pushaw
1:  lodsb
    testb   %al, %al
    jz      2f
    movb    $0x0E, %ah
    movw    $0x0007, %bx
    int     $0x10
    jmp     1b
2:  popaw
    ret

    .code32
protected:
    movw    $0x10, %ax
    movw    %ax, %ds
    movw    %ax, %es
    movw    %ax, %fs
    movw    %ax, %gs
    movw    %ax, %ss
    /* 6. Copy the kernel from the buffer to where it was linked. */
    movl    $BUFFER_SEG << 4, %esi
    movl    load_address, %edi
    movzwl  kernel_sectors, %ecx
    shll    $7, %ecx            /* 128 dwords per sector */
    rep movsl
    /* 7. Enter the kernel, Multiboot style. */
    movl    $0x2BADB002, %eax
    movl    $MBI, %ebx
    jmp     *entry_point

/* The GDT. Its first entry must be null and is never read by the CPU, so the
 * 6-byte GDT descriptor for LGDT lives in it. */
    .p2align 3
gdt:
gdt_descriptor:
    .word   gdt_end - gdt - 1   /* limit */
    .long   gdt                 /* base */
    .word   0
    .quad   0x00CF9A000000FFFF  /* 0x08: flat 32-bit ring-0 code */
    .quad   0x00CF92000000FFFF  /* 0x10: flat ring-0 data */
gdt_end:

/* Disk address packet for int 0x13 AH=0x42. */
dap:
    .byte   16, 0               /* packet size, reserved */
    .word   1                   /* sectors to transfer */
    .word   0                   /* buffer offset */
dap_segment:
    .word   0                   /* buffer segment */
dap_lba:
    .quad   0                   /* starting LBA */

boot_drive:         .byte 0
use_edd:            .byte 0
sectors_per_track:  .word 0
heads:              .word 0

msg_loading: .asciz "Loading"
msg_dot:     .asciz "."
msg_ok:      .asciz "ok\r\n"
msg_error:   .asciz "disk error"
loader_name: .asciz "sandbox-loader"

/* The parameter block, filled in by sandbox/guestbuild.py. LBAs are 16-bit:
 * the kernel must sit in the first 32 MiB of the disk. */
    .org    0x1F0
kernel_lba:     .word 0         /* first sector of the kernel image          */
kernel_sectors: .word 0         /* its length in sectors                     */
cmdline_lba:    .word 0         /* sector holding the command line, 0 = none */
load_address:   .long 0         /* where the kernel is linked (1 MiB)        */
entry_point:    .long 0         /* the kernel's Multiboot entry point        */

    .org    510
    .word   0xAA55
