/*
 * multiboot_entry.S - the first instructions of a Multiboot kernel.
 *
 * The Multiboot header must sit in the first 8 KiB of the file, 4-byte
 * aligned; kernel.ld puts the .multiboot section first. Flags bit 0 asks for
 * page-aligned modules, bit 1 for the memory information (mem_lower,
 * mem_upper and the memory map).
 *
 * On entry (from GRUB, `qemu -kernel`, or guests/src/loader): 32-bit
 * protected mode, flat segments, interrupts off, EAX = 0x2BADB002,
 * EBX = address of the Multiboot info. The stack pointer is undefined, so we
 * set up our own before calling C: kmain(magic, info).
 */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003

    .section .multiboot, "a"
    .p2align 2
    .long   MB_MAGIC
    .long   MB_FLAGS
    .long   -(MB_MAGIC + MB_FLAGS)      /* the three words sum to zero */

    .text
    .globl _start
_start:
    cli
    cld
    movl    %eax, %esi          /* keep the boot magic and info pointer */
    movl    %ebx, %ebp
    /* Zero the BSS: a Multiboot loader does it for ELF kernels, our own
     * loader does not, so the kernel makes sure. */
    movl    $__bss_start, %edi
    movl    $__bss_end, %ecx
    subl    %edi, %ecx
    xorl    %eax, %eax
    rep stosb
    movl    $boot_stack_top, %esp
    pushl   %ebp                /* kmain(magic, info) */
    pushl   %esi
    call    kmain
1:  cli
    hlt
    jmp     1b

    .bss
    .p2align 4
boot_stack:
    .skip   8192
boot_stack_top:
