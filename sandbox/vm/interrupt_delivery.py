"""Architectural interrupt and exception delivery, done in software, for any backend.

What the CPU's microcode does when an interrupt or exception arrives: push the return
frame, pick the handler from the real-mode IVT or the protected-mode IDT, switch to
the ring-0 stack from the TSS when a ring-3 task is interrupted, and clear IF for
interrupt gates. A fault while delivering a fault becomes a double fault; a fault
while delivering a double fault is a triple fault (``TripleFault``), which stops the
VM.

Who needs it:
- Unicorn reports ``int n`` and CPU exceptions to a hook and does NOT vector through
  the IVT/IDT, so every delivery on Unicorn comes through here;
- KVM on a paravirtual host (kvm_pvm) cannot emulate ``int n`` in protected mode and
  injects external interrupts incorrectly for 16-bit gates, so the KVM backend uses
  this code there (see sandbox/backends/kvm/emulate.py). On VT-x/AMD-V the hardware
  delivers and none of this runs.

The code sees the CPU only through ``ArchitecturalCpu``: registers, the IDTR, linear
memory, descriptors, the TSS, and three ways of loading a segment register with what
a descriptor says (the hidden "descriptor cache"). Each backend implements those.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sandbox.backends.base import CR0_PE, EFLAGS_IF, EFLAGS_NT, EFLAGS_RF, EFLAGS_TF, EFLAGS_VM
from sandbox.vm.descriptors import ERROR_CODE_VECTORS, GATE_TASK, parse_gate

if TYPE_CHECKING:
    from sandbox.vm.descriptors import Segment

DOUBLE_FAULT = 8


class ArchitecturalCpu(Protocol):
    """What delivery needs from a vCPU (UnicornVCpu itself; KvmArchCpu for KVM)."""
    host: Any                   # has publish(kind, **data)

    def get_regs(self) -> dict[str, int]: ...
    def set_regs(self, **regs: int) -> None: ...
    def idtr(self) -> tuple[int, int]:
        """(base, limit) of the IDT (the IVT in real mode)."""
    def read_linear(self, linear: int, length: int) -> bytes: ...
    def write_linear(self, linear: int, data: bytes, supervisor: bool = True) -> None: ...
    def read_segment_descriptor(self, selector: int) -> "Segment | None":
        """The GDT/LDT descriptor ``selector`` names; None for the null selector or
        one beyond the table's limit."""
    def tss_stack(self, cpl: int, size: int) -> tuple[int, int]:
        """(SS, ESP) for ring ``cpl`` from the current TSS (``size`` 4: 32-bit TSS)."""
    def load_ring0_stack(self, ss: int, esp: int) -> None:
        """SS (with its descriptor cache) and ESP, whatever the current privilege."""
    def load_protected_cs(self, selector: int, eip: int) -> None:
        """CS (with its descriptor cache) and EIP, in protected mode."""
    def load_real_mode_cs(self, cs: int, ip: int) -> None:
        """CS = ``cs`` (base cs * 16) and IP, in real mode."""


class TripleFault(Exception):
    """Delivering a double fault failed: a real PC would reset; the VM stops."""


class DeliveryFault(Exception):
    """The CPU would raise ``vector`` while trying to deliver an interrupt."""

    def __init__(self, vector: int, why: str) -> None:
        super().__init__(why)
        self.vector = vector
        self.why = why


def deliver(cpu: ArchitecturalCpu, vector: int, error_code: int | None = None,
            software: bool = False) -> None:
    """Deliver ``vector``; escalate to #DF and then to a triple fault as the CPU does.
    ``software``: an ``int n`` (EIP already past it; the gate's DPL is checked).

    Simplification: any fault while delivering becomes a double fault (the SDM makes
    some benign pairs deliver serially instead; no guest we run depends on that)."""
    try:
        _deliver_once(cpu, vector, error_code, software)
        return
    except DeliveryFault as first:
        why = first.why
        if vector == DOUBLE_FAULT:
            raise TripleFault(f"triple fault: {why} while delivering a double fault") from None
        cpu.host.publish("cpu.double_fault", vector=vector, reason=why)
    try:
        _deliver_once(cpu, DOUBLE_FAULT, 0, False)
    except DeliveryFault as second:
        raise TripleFault(f"triple fault: {second.why} while delivering a double fault "
                          f"(first: {why})") from None


def _deliver_once(cpu: ArchitecturalCpu, vector: int, error_code: int | None, software: bool) -> None:
    regs = cpu.get_regs()
    idt_base, idt_limit = cpu.idtr()
    if not regs["cr0"] & CR0_PE:
        _deliver_real_mode(cpu, regs, vector, idt_base, idt_limit)
    else:
        _deliver_protected_mode(cpu, regs, vector, error_code, software, idt_base, idt_limit)


def _deliver_real_mode(cpu: ArchitecturalCpu, regs: dict[str, int], vector: int,
                       idt_base: int, idt_limit: int) -> None:
    if vector * 4 + 3 > idt_limit:
        raise DeliveryFault(13, f"vector {vector:#x} is beyond the IVT limit {idt_limit:#x}")
    entry = cpu.read_linear(idt_base + vector * 4, 4)
    ip, cs = int.from_bytes(entry[:2], "little"), int.from_bytes(entry[2:], "little")
    sp = regs["esp"] & 0xFFFF
    ss_base = regs["ss"] << 4
    frame = b"".join(v.to_bytes(2, "little") for v in (regs["eip"] & 0xFFFF, regs["cs"], regs["eflags"] & 0xFFFF))
    sp = (sp - 6) & 0xFFFF
    cpu.write_linear(ss_base + sp, frame)
    flags = regs["eflags"] & ~(EFLAGS_IF | EFLAGS_TF | (1 << 18))
    cpu.set_regs(esp=(regs["esp"] & 0xFFFF0000) | sp, eflags=flags)
    cpu.load_real_mode_cs(cs, ip)


def _deliver_protected_mode(cpu: ArchitecturalCpu, regs: dict[str, int], vector: int,
                            error_code: int | None, software: bool,
                            idt_base: int, idt_limit: int) -> None:
    if regs["eflags"] & EFLAGS_VM:
        raise DeliveryFault(13, "virtual-8086 mode is not supported")
    if vector * 8 + 7 > idt_limit:
        raise DeliveryFault(13, f"vector {vector:#x} is beyond the IDT limit {idt_limit:#x}")
    gate = parse_gate(cpu.read_linear(idt_base + vector * 8, 8))
    if gate.type == GATE_TASK:
        raise DeliveryFault(13, f"vector {vector:#x} uses a task gate (not supported)")
    if gate.type not in (0x6, 0x7, 0xE, 0xF):
        raise DeliveryFault(13, f"IDT entry {vector:#x} is not a gate (type {gate.type:#x})")
    cpl = regs["cs"] & 3
    if software and gate.dpl < cpl:
        raise DeliveryFault(13, f"int {vector:#x} from ring {cpl} needs gate DPL >= {cpl}")
    if not gate.present:
        raise DeliveryFault(11, f"IDT entry {vector:#x} is not present")
    target = cpu.read_segment_descriptor(gate.selector)
    if target is None or not target.present or not target.is_code:
        raise DeliveryFault(13, f"IDT entry {vector:#x} selector {gate.selector:#x} is not a present code segment")
    new_cpl = target.dpl if not target.access & 0x04 else cpl   # conforming code keeps CPL
    push_error = vector in ERROR_CODE_VECTORS and not software
    size = 4 if gate.is_32bit else 2
    # Pushed in this order: [SS, ESP,] EFLAGS, CS, EIP[, error code]. In memory the
    # last push is at the lowest address, which is where IRET starts popping.
    pushes = [regs["eflags"], regs["cs"], regs["eip"]]
    if new_cpl < cpl:
        ss0, esp0 = cpu.tss_stack(new_cpl, size)
        ss_desc = cpu.read_segment_descriptor(ss0)
        if ss_desc is None or not ss_desc.present:
            raise DeliveryFault(10, f"TSS ring-{new_cpl} stack selector {ss0:#x} is not present")
        pushes = [regs["ss"], regs["esp"]] + pushes
        stack_base, sp = ss_desc.base, esp0
    else:
        ss_desc = cpu.read_segment_descriptor(regs["ss"])
        stack_base, sp = (ss_desc.base if ss_desc else 0), regs["esp"]
        ss0 = None
    if push_error:
        pushes.append(error_code or 0)
    data = b"".join((v & ((1 << (8 * size)) - 1)).to_bytes(size, "little") for v in reversed(pushes))
    sp = (sp - len(data)) & 0xFFFFFFFF
    try:
        cpu.write_linear(stack_base + sp, data, supervisor=True)
    except Exception as e:  # a not-present stack page while pushing the frame
        raise DeliveryFault(14, f"cannot push the interrupt frame at {stack_base + sp:#x} ({e})") from None
    flags = regs["eflags"] & ~(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF | EFLAGS_VM)
    if gate.is_interrupt_gate:
        flags &= ~EFLAGS_IF
    if ss0 is not None:
        cpu.load_ring0_stack(ss0, sp)
    else:
        cpu.set_regs(esp=sp)
    cpu.set_regs(eflags=flags)
    cpu.load_protected_cs(gate.selector & ~3 | new_cpl, gate.offset if size == 4 else gate.offset & 0xFFFF)


__all__ = ["ArchitecturalCpu", "deliver", "TripleFault", "DeliveryFault", "DOUBLE_FAULT"]
