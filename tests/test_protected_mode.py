"""Protected mode: IDT delivery, remapped PIC and PIT interrupts, ring 3 with a TSS
stack switch, paging with a page-fault handler, double and triple faults."""
from __future__ import annotations

from asm import assemble, needs_as
from pmode import program

from sandbox.api import Machine

pytestmark = needs_as


def boot(tmp_path, body: str, **kw):
    image = assemble(program(body), 0x7C00)
    img = tmp_path / "pm.img"
    img.write_bytes(image + bytes(32 * 512 - len(image)))
    m = Machine.from_image(img, **kw)
    m.power_on()
    m.run(wall_timeout_s=30)
    return m.vm()


def test_software_interrupt_through_idt(tmp_path):
    vm = boot(tmp_path, """
    mov $0x30, %eax
    mov $handler, %ebx
    xor %ecx, %ecx
    call set_gate
    call load_idt
    mov $1, %eax
    int $0x30
    jmp exit_al
handler:
    add $41, %eax
    iret
""")
    assert vm.exit_status == (42 << 1) | 1


def test_divide_error_vectors_to_handler_at_faulting_instruction(tmp_path):
    vm = boot(tmp_path, """
    mov $0, %eax
    mov $de_handler, %ebx
    xor %ecx, %ecx
    call set_gate
    call load_idt
    xor %ecx, %ecx
    mov $7, %eax
    xor %edx, %edx
fault:
    div %ecx
    jmp exit_al
de_handler:
    cmpl $fault, (%esp)         # the saved EIP points at the faulting div
    jne 1f
    mov $0x33, %al
    jmp exit_al
1:  mov $0x44, %al
    jmp exit_al
""")
    assert vm.exit_status == (0x33 << 1) | 1


def test_pit_interrupts_with_remapped_pic(tmp_path):
    vm = boot(tmp_path, """
    # remap the PIC to 0x20/0x28, unmask only IRQ 0
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xa1
    mov $4, %al; out %al, $0x21
    mov $2, %al; out %al, $0xa1
    mov $1, %al; out %al, $0x21; out %al, $0xa1
    mov $0xfe, %al; out %al, $0x21
    mov $0xff, %al; out %al, $0xa1
    # PIT channel 0, mode 2, 1000 Hz (divisor 1193)
    mov $0x34, %al; out %al, $0x43
    mov $1193 & 0xff, %al; out %al, $0x40
    mov $1193 >> 8, %al; out %al, $0x40
    mov $0x20, %eax
    mov $tick, %ebx
    xor %ecx, %ecx
    call set_gate
    call load_idt
    sti
1:  hlt
    cmpl $10, ticks
    jb 1b
    mov ticks, %eax
    jmp exit_al
tick:
    incl ticks
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret
ticks: .long 0
""")
    assert vm.exit_status == (10 << 1) | 1
    # ten ticks at 1193 counts of 1.193182 MHz: 10 ms of guest time after boot
    assert 9.9e6 < vm.clock.now() < 12e6


RING3 = """
    # TSS at 0x6000 with ring-0 stack 0x80000
    movl $0x80000, 0x6004
    movl $0x10, 0x6008
    mov $tss_desc, %edi
    movw $103, (%edi)
    movw $0x6000, 2(%edi)
    movb $0, 4(%edi)
    movb $0x89, 5(%edi)
    movb $0, 6(%edi)
    movb $0, 7(%edi)
    mov $0x28, %ax
    ltr %ax
    mov $0x80, %eax
    mov $syscall, %ebx
    mov $3, %ecx
    call set_gate
    call load_idt
    # iret to ring 3
    push $0x23
    push $0x70000
    pushf
    push $0x1b
    push $user
    iret
user:
    mov $0x23, %ax
    mov %ax, %ds
    mov $5, %ebx
    int $0x80                   # a system call from ring 3
    mov %ebx, %eax              # the kernel added the saved CS's RPL
    int $0x80
    jmp user
syscall:
    mov 4(%esp), %ecx           # saved CS
    and $3, %ecx
    cmp $1, %ebx
    ja 1f
    mov %esp, %eax              # second call: report the ring-0 stack pointer
    shr $12, %eax
    jmp exit_al
1:  add %ecx, %ebx              # 5 + 3 = 8
    cmp $8, %ebx
    jne 2f
    mov $1, %ebx
    iret
2:  mov $0x99, %al
    jmp exit_al
"""


def test_ring3_system_call_switches_to_tss_stack(tmp_path):
    vm = boot(tmp_path, RING3)
    # The second syscall runs on the TSS ring-0 stack just below 0x80000 (0x7f... >> 12 = 0x7f)
    assert vm.exit_status == (0x7F << 1) | 1, vm.exit_reason


def test_privileged_instruction_in_ring3_is_general_protection(tmp_path):
    vm = boot(tmp_path, RING3.replace("mov $5, %ebx\n    int $0x80", "cli") + """
gp:
    mov $0x0d, %al
    jmp exit_al
""".replace("gp:", "gp_handler:") + "", )
    # no #GP handler installed: #GP -> #DF -> triple fault
    assert vm.state.value == "crashed"
    assert "triple fault" in vm.exit_reason


def test_triple_fault_stops_only_that_vm(tmp_path):
    vm = boot(tmp_path, """
    lidt bad_idtr
    int $3
bad_idtr: .word 0
    .long 0
""")
    assert vm.state.value == "crashed" and "triple fault" in vm.exit_reason


def test_paging_and_page_fault_handler(tmp_path):
    vm = boot(tmp_path, """
    mov $14, %eax
    mov $pf, %ebx
    xor %ecx, %ecx
    call set_gate
    call load_idt
    # page directory at 0x20000: identity map the first 4 MiB with a page table at 0x21000
    mov $0x21000, %edi
    xor %eax, %eax
    mov $0x3, %eax
1:  mov %eax, (%edi)
    add $4, %edi
    add $0x1000, %eax
    cmp $0x22000, %edi
    jb 1b
    movl $0x21003, 0x20000
    # map linear 0x400000 (second PDE) to nothing: the handler will map it
    mov $0x20000, %eax
    mov %eax, %cr3
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0
    movl $0x12345678, 0x400010   # faults: not present
    mov 0x400010, %eax
    cmp $0x12345678, %eax
    jne 2f
    mov pf_count, %eax
    jmp exit_al
2:  mov $0x77, %al
    jmp exit_al
pf:
    incl pf_count
    mov %cr2, %eax
    cmp $0x400010, %eax
    jne 3f
    # map the 4 MiB region with a second page table at 0x22000 -> frames at 0x300000
    movl $0x300003, 0x22000
    movl $0x22003, 0x20004
    add $4, %esp                 # drop the error code
    iret
3:  mov $0x66, %al
    jmp exit_al
pf_count: .long 0
""")
    assert vm.exit_status == (1 << 1) | 1, vm.exit_reason


def test_wild_access_beyond_ram_reads_open_bus(tmp_path):
    from sandbox.events import EventRecorder
    image = assemble(program("""
    movl $0x12345678, 0x3000000      # 48 MiB: this 16 MiB VM has no RAM there
    mov 0x3000000, %eax
    cmp $0xffffffff, %eax
    jne 1f
    mov $0x42, %al
    jmp exit_al
1:  mov $0x13, %al
    jmp exit_al
"""), 0x7C00)
    img = tmp_path / "w.img"
    img.write_bytes(image + bytes(32 * 512 - len(image)))
    m = Machine.from_image(img)
    rec = EventRecorder(m.events, ["mem.isolation"])
    m.power_on()
    m.run(wall_timeout_s=20)
    assert m.vm().exit_status == (0x42 << 1) | 1
    assert {e.data["gpa"] for e in rec.events} >= {0x3000000}
