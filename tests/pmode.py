"""A boot-sector prologue that enters 32-bit protected mode with a flat GDT (ring 0 and
ring 3 segments and a TSS), for tests of protected-mode behaviour."""

PROLOGUE = r"""
.code16
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %ss
    mov $0x7000, %sp
    # load the rest of the test program (sectors 1..16) to 0x7e00
    mov $0x42, %ah
    mov $dap, %si
    int $0x13
    lgdt gdtr
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmp $0x08, $pm32
dap: .byte 16, 0
    .word 16, 0x7e00, 0
    .quad 1
.align 8
gdt:
    .quad 0
    .quad 0x00cf9a000000ffff    # 0x08 ring-0 code
    .quad 0x00cf92000000ffff    # 0x10 ring-0 data
    .quad 0x00cffa000000ffff    # 0x1b ring-3 code
    .quad 0x00cff2000000ffff    # 0x23 ring-3 data
tss_desc:
    .quad 0                     # 0x28 TSS, filled in at run time
gdt_end:
gdtr: .word gdt_end - gdt - 1
    .long gdt
.org 510
.word 0xaa55
.code32
pm32:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x90000, %esp
"""

# Helpers the tests' code may call (32-bit).
HELPERS = r"""
# set_gate: eax = vector, ebx = handler (DPL 3 interrupt gate if ecx = 3, else DPL 0)
set_gate:
    push %edi
    lea idt(,%eax,8), %edi
    mov %bx, (%edi)
    movw $0x08, 2(%edi)
    movb $0, 4(%edi)
    movb $0x8e, 5(%edi)
    cmp $3, %ecx
    jne 1f
    movb $0xee, 5(%edi)
1:  shr $16, %ebx
    mov %bx, 6(%edi)
    pop %edi
    ret
load_idt:
    lidt idtr
    ret
exit_al:
    mov $0xf4, %dx
    out %al, %dx
    cli
    hlt
.align 8
idtr: .word 256*8-1
    .long idt
idt: .fill 256*8, 1, 0
"""


def program(body: str) -> str:
    return PROLOGUE + body + HELPERS
