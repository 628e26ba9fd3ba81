"""The KVM backend's emulation fallback on a paravirtual host (kvm_pvm).

kvm_pvm runs 32-bit guests in KVM's instruction emulator, which cannot do protected-mode
``int n`` and ``iret``, injects interrupts through 16-bit gates with 32-bit frames, and
turns a ring-3 ``int n`` into a #UD. The backend does those itself (fallback.py) with
the architectural code the Unicorn backend uses. These tests run tiny guests and check
what the CPU would have done; the guest-level ones pass on VT-x/AMD-V too (where the
CPU does it all and the fallback is off). Skipped where /dev/kvm does not open.
"""
from __future__ import annotations

import struct

import pytest
from asm import assemble, needs_as
from test_kvm_vcpu import FakeHost, load32

from sandbox.backends.kvm import pvm_limits
from sandbox.backends.kvm.abi import kvm_regs, kvm_segment, kvm_sregs
from sandbox.backends.kvm.probe import probe
from sandbox.vm.descriptors import encode_segment
from sandbox.vm.exits import CrashExit, HltExit, StepExit

KVM = probe()
pytestmark = [pytest.mark.kvm, needs_as,
              pytest.mark.skipif(not KVM.usable, reason=f"KVM unusable: {KVM.problem()}")]
pvm_only = pytest.mark.skipif(not KVM.paravirtual, reason="the fallback is for kvm_pvm; VT-x/AMD-V needs none")

if KVM.usable:
    from sandbox.backends.kvm.vcpu import KvmVCpu

IDT = 0x3000
TSS = 0x6000
RING0_STACK = 0x8000


def gate(offset: int, dpl: int = 0, kind: int = 0xE, selector: int = 0x08) -> bytes:
    """An IDT gate: 0xE 32-bit interrupt gate, 0xF trap gate, 0x6 16-bit interrupt gate."""
    return struct.pack("<HHBBH", offset & 0xFFFF, selector, 0, 0x80 | dpl << 5 | kind, offset >> 16)


class Guest:
    """A flat 32-bit guest with ring-0/ring-3 segments, a TSS, an IDT and handlers that
    report on port 0x12 which vector ran, then its frame (EIP, CS, EFLAGS) on 0x13."""
    GDT = (bytes(8) + encode_segment(0, 0xFFFFF, 0x9A, 0xC) + encode_segment(0, 0xFFFFF, 0x92, 0xC)
           + encode_segment(0, 0xFFFFF, 0xFA, 0xC) + encode_segment(0, 0xFFFFF, 0xF2, 0xC)
           + encode_segment(TSS, 103, 0x89, 0x0))

    def __init__(self, body: str, gates: dict[int, tuple[int, int]] | None = None) -> None:
        self.host = FakeHost()
        self.cpu = KvmVCpu(self.host, 0)
        mem = self.host.memory
        mem.write(TSS + 4, struct.pack("<II", RING0_STACK, 0x10))          # ESP0, SS0
        handlers, idt = bytearray(), bytearray(256 * 8)
        default = {0x80: (3, 0xE), 6: (0, 0xE), 13: (0, 0xE)}
        for vector, (dpl, kind) in (default if gates is None else gates).items():
            at = 0x5000 + len(handlers)
            code = assemble(f""".code32
                mov ${vector}, %eax; out %eax, $0x12
                mov (%esp), %eax; out %eax, $0x13
                mov 4(%esp), %eax; out %eax, $0x13
                mov 8(%esp), %eax; out %eax, $0x13
                cli; hlt""", at)
            handlers += code
            idt[vector * 8:vector * 8 + 8] = gate(at, dpl, kind)
        mem.write(0x5000, bytes(handlers))
        mem.write(IDT, bytes(idt))
        prologue = "mov $0x28, %ax; ltr %ax; lidt idtr; "
        load32(self.host, self.cpu, prologue + body + "\nidtr: .word 0x7ff\n .long 0x3000")
        mem.write(0x1000, self.GDT)                       # load32's flat GDT, plus ring 3 and the TSS
        sregs = self.cpu._sregs()
        sregs.gdt.limit = len(self.GDT) - 1
        from sandbox.backends.kvm.abi import KVM_SET_SREGS, ioctl
        ioctl(self.cpu.fd, KVM_SET_SREGS, sregs)

    def run(self):
        result = self.cpu.run(None, None)
        return result, [(port, value) for port, value in self.host.outputs if port in (0x12, 0x13)]

    def close(self) -> None:
        self.cpu.close()


TO_RING3 = "push $0x23; push $0x7000; push $0x202; push $0x1b; push $user; iret\nuser: "


@pytest.fixture
def guest():
    made = []

    def make(body: str, gates=None) -> Guest:
        made.append(Guest(body, gates))
        return made[-1]
    yield make
    for g in made:
        g.close()


# --- int n and iret in ring 0 ---------------------------------------------------------------
def test_int_n_and_iret_in_ring_0(guest):
    g = guest("mov $0x30, %eax; int $0x30; out %eax, $0x14; cli; hlt",
              gates={0x30: (0, 0xE)})
    g.host.memory.write(0x5000, assemble(".code32\nadd $12, %eax; iret", 0x5000))   # the handler
    assert isinstance(g.cpu.run(None, None), HltExit)
    assert g.host.outputs[-1] == (0x14, 0x3C)               # back after the int, with its result
    if KVM.paravirtual:
        assert g.cpu.fallback.emulated == {"int": 1, "iretd": 1}


def test_interrupt_gate_clears_if_and_iret_restores_it(guest):
    g = guest("sti; int $0x30; pushf; pop %eax; out %eax, $0x14; cli; hlt", gates={0x30: (0, 0xE)})
    g.host.memory.write(0x5000, assemble(".code32\npushf; pop %eax; out %eax, $0x15; iret", 0x5000))
    assert isinstance(g.cpu.run(None, None), HltExit)
    flags = dict(g.host.outputs)
    assert not flags[0x15] & 0x200 and flags[0x14] & 0x200


@pvm_only
def test_without_the_fallback_kvm_pvm_cannot_do_int_n(guest):
    g = guest("int $0x80; cli; hlt")
    g.cpu.fallback = None                                   # what the backend did before
    result = g.cpu.run(None, None)
    assert isinstance(result, CrashExit) and "could not emulate an instruction" in result.reason


# --- iret's checks ------------------------------------------------------------------------------
@pytest.mark.parametrize("frame, error", [
    ("push $0x2; push $0x00; push $0x2000", 0),          # the null code selector: #GP(0)
    ("push $0x2; push $0x10; push $0x2000", 0x10),       # a data segment is not code: #GP(0x10)
    # to ring 3, SS is popped too, and 0x10 is a ring-0 data segment: #GP(0x10)
    ("push $0x10; push $0x7000; push $0x2; push $0x1b; push $0x2000", 0x10),
], ids=["null CS", "data segment as CS", "ring-0 SS for ring 3"])
def test_a_bad_iret_frame_is_a_general_protection_fault(guest, frame, error):
    g = guest(frame + "; iret", gates={13: (0, 0xE)})
    result, seen = g.run()
    assert isinstance(result, HltExit)
    assert seen[0] == (0x12, 13) and seen[1] == (0x13, error)


# --- ring 3 ---------------------------------------------------------------------------------------
def test_system_call_from_ring_3_switches_to_the_tss_stack(guest):
    g = guest(TO_RING3 + "mov $5, %eax; int $0x80")
    result, seen = g.run()
    assert isinstance(result, HltExit)
    assert seen[0] == (0x12, 0x80)                       # the system call, not a #UD
    assert seen[2] == (0x13, 0x1B)                       # it came from ring 3
    esp_in_handler = RING0_STACK - 20                    # SS, ESP, EFLAGS, CS, EIP pushed
    assert g.host.memory.read(esp_in_handler + 12, 4) == struct.pack("<I", 0x7000)
    if KVM.paravirtual:
        assert g.cpu.fallback.watched_steps >= 1 and not g.cpu.fallback.watching


def test_ring_3_computes_correctly_while_watched(guest):
    g = guest(TO_RING3 + """
        mov $100, %ecx; xor %eax, %eax
    1:  add %ecx, %eax
        push %eax
        pop %ebx
        loop 1b
        int $0x80""")
    result, seen = g.run()
    assert seen[0] == (0x12, 0x80)
    assert g.cpu.get_regs()["ebx"] == 5050


def test_privileged_instruction_in_ring_3_is_a_general_protection_fault(guest):
    g = guest(TO_RING3 + "cli")
    result, seen = g.run()
    assert seen[0] == (0x12, 13) and seen[3] == (0x13, 0x1B)   # error code, EIP, then CS


def test_timer_interrupt_in_ring_3_goes_through_the_tss_stack(guest):
    g = guest(TO_RING3 + "spin: jmp spin", gates={0x20: (0, 0xE)})
    g.cpu.run(None, 20_000)                     # a wall-clock slice: still spinning in ring 3
    assert g.cpu.get_regs()["cs"] == 0x1B and g.cpu.can_take_interrupt()
    g.cpu.interrupt(0x20)
    result, seen = g.run()
    assert seen[0] == (0x12, 0x20) and seen[2] == (0x13, 0x1B)


def test_the_debugger_steps_over_a_ring_3_system_call(guest):
    g = guest(TO_RING3 + "nop; int $0x80")
    while g.cpu.get_regs()["cs"] != 0x1B:
        g.cpu.step()
    assert isinstance(g.cpu.step(), StepExit)            # nop
    step = g.cpu.step()                                  # int $0x80: into the ring-0 handler
    assert isinstance(step, StepExit) and g.cpu.get_regs()["cs"] == 0x08


# --- interrupt delivery ----------------------------------------------------------------------------
@pvm_only
def test_16_bit_gate_gets_a_16_bit_frame(guest):
    """kvm_pvm's own injection pushes 12 bytes here; the CPU (and the fallback) push 6."""
    g = guest("sti; hlt", gates={0x20: (0, 0x6)})
    assert isinstance(g.cpu.run(None, None), HltExit)
    esp = g.cpu.get_regs()["esp"]
    g.cpu.interrupt(0x20)
    assert g.cpu.get_regs()["esp"] == esp - 6
    ip, cs, flags = struct.unpack("<HHH", g.host.memory.read(esp - 6, 6))
    assert cs == 0x08 and flags & 0x200


# --- what cannot run on kvm_pvm -------------------------------------------------------------------
def sregs_with(cr0: int, cs: int = 0x08, efer: int = 0) -> kvm_sregs:
    s = kvm_sregs()
    s.cr0, s.efer, s.cs = cr0, efer, kvm_segment(selector=cs)
    return s


def test_paging_outside_long_mode_is_the_limit():
    assert pvm_limits.limit_hit(sregs_with(0x80000011)) == "paging"
    assert pvm_limits.limit_hit(sregs_with(0x80000011, efer=pvm_limits.EFER_LMA)) is None  # long mode
    assert pvm_limits.limit_hit(sregs_with(0x11)) is None
    assert pvm_limits.limit_hit(sregs_with(0x10)) is None                                    # real mode
    regs = kvm_regs(rip=0x100, rbx=0x80000011)
    code = {0x100: bytes.fromhex("0f22c3")}                                 # mov %ebx, %cr0
    assert pvm_limits.limit_hit(sregs_with(0x11), regs, lambda a, n: code.get(a, b"")) == "paging"
    regs.rbx = 0x11
    assert pvm_limits.limit_hit(sregs_with(0x11), regs, lambda a, n: code.get(a, b"")) is None
    assert "--backend unicorn" in pvm_limits.describe("paging")


@pvm_only
def test_turning_paging_on_stops_with_the_reason(guest):
    g = guest("""
        mov $0x20000, %eax; mov %eax, %cr3
        mov %cr0, %eax; or $0x80000000, %eax
        mov %eax, %cr0
        cli; hlt""", gates={})
    result = g.cpu.run(None, None)
    assert isinstance(result, CrashExit) and g.cpu.host_limit == "paging"
    assert result.reason.startswith("kvm_pvm cannot run 32-bit paging")


@pvm_only
def test_a_guest_with_a_gp_handler_sees_the_paging_limit_as_a_gp(guest):
    """The limit, as a guest with its own #GP handler meets it: the ``mov`` to CR0 faults
    (a real CPU would not) and no exit tells the sandbox. Documented, not hidden."""
    g = guest("mov %cr0, %eax; or $0x80000000, %eax\nsetpg: mov %eax, %cr0\n cli; hlt",
              gates={13: (0, 0xE)})
    result, seen = g.run()
    assert isinstance(result, HltExit) and seen[0] == (0x12, 13)
    assert not g.cpu.get_regs()["cr0"] & 0x80000000


def test_a_watched_ring_3_vcpu_on_another_thread_stops_on_request(guest):
    """The scheduler runs vCPUs on worker threads and stops them from others."""
    import threading
    import time
    from sandbox.vm.exits import StopExit
    g = guest(TO_RING3 + "spin: jmp spin")
    results = []
    worker = threading.Thread(target=lambda: results.append(g.cpu.run(None, None)))
    worker.start()
    time.sleep(0.1)
    g.cpu.request_stop()
    worker.join(2)
    assert not worker.is_alive() and isinstance(results[0], StopExit)
    assert g.cpu.get_regs()["cs"] == 0x1B


@pvm_only
def test_an_instruction_the_emulator_lacks_is_named(guest):
    g = guest("popcnt %eax, %ebx; cli; hlt")
    result = g.cpu.run(None, None)
    assert isinstance(result, CrashExit) and g.cpu.host_limit == "instruction"
    assert "emulator does not implement" in result.reason and "popcnt ebx, eax at 0008:" in result.reason
