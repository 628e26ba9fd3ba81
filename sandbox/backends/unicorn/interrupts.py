"""Architectural interrupt and exception delivery for Unicorn vCPUs.

Unicorn reports ``int n`` and CPU exceptions to a hook and does NOT vector through
the IVT or IDT, so this module does what the CPU's microcode would: push the return
frame, pick the handler from the real-mode IVT or the protected-mode IDT, switch to
the ring-0 stack from the TSS when a ring-3 task is interrupted, and clear IF for
interrupt gates. A fault while delivering a fault becomes a double fault; a fault
while delivering a double fault is a triple fault (``TripleFault``), which stops the
VM. Every backend must give the guest the same behaviour; KVM does this in hardware.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.base import CR0_PE, EFLAGS_IF, EFLAGS_NT, EFLAGS_RF, EFLAGS_TF, EFLAGS_VM
from sandbox.vm.descriptors import ERROR_CODE_VECTORS, GATE_TASK, parse_gate, parse_segment

if TYPE_CHECKING:
    from sandbox.backends.unicorn.cpu import UnicornVCpu

DOUBLE_FAULT = 8


class TripleFault(Exception):
    """Delivering a double fault failed: a real PC would reset; the VM stops."""


class DeliveryFault(Exception):
    """The CPU would raise ``vector`` while trying to deliver an interrupt."""

    def __init__(self, vector: int, why: str) -> None:
        super().__init__(why)
        self.vector = vector
        self.why = why


def deliver(cpu: "UnicornVCpu", vector: int, error_code: int | None = None,
            software: bool = False) -> None:
    """Deliver ``vector``; escalate to #DF and then to a triple fault as the CPU does.

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


def _deliver_once(cpu: "UnicornVCpu", vector: int, error_code: int | None, software: bool) -> None:
    regs = cpu.get_regs()
    idt_base, idt_limit = cpu.idtr()
    if not regs["cr0"] & CR0_PE:
        _deliver_real_mode(cpu, regs, vector, idt_base, idt_limit)
    else:
        _deliver_protected_mode(cpu, regs, vector, error_code, software, idt_base, idt_limit)


def _deliver_real_mode(cpu: "UnicornVCpu", regs: dict[str, int], vector: int,
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


def _deliver_protected_mode(cpu: "UnicornVCpu", regs: dict[str, int], vector: int,
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


__all__ = ["deliver", "TripleFault", "DeliveryFault", "parse_segment"]
