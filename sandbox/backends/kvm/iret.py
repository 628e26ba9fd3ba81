"""IRET in protected mode, done in Python for hosts whose KVM cannot emulate it.

KVM's instruction emulator implements IRET for real mode only. On VT-x/AMD-V that
never matters (the CPU runs IRET itself), but on kvm_pvm every ring-0 instruction of a
32-bit guest goes through the emulator, so the first IRET of an interrupt handler
stops the guest. ``interrupt_return`` does what the CPU does (Intel SDM vol. 2A,
"IRET/IRETD", protected-mode path), with the checks that matter:

    pop EIP, CS, EFLAGS                       (16 or 32 bits each: the operand size)
    CS must name a present code segment, RPL >= CPL, DPL fitting RPL   else #GP / #NP
    EIP must lie within the new CS limit                               else #GP(0)
    RPL == CPL: same privilege, done
    RPL >  CPL: return to an outer ring: pop ESP, SS as well; SS must be a present
                writable data segment with DPL = RPL = its selector's RPL  else #GP / #SS
                and data segment registers the outer ring may not use become null
    EFLAGS: IOPL changes only at CPL 0, IF only when CPL <= IOPL, bit 1 is always 1

Every check happens before anything changes, so a failing IRET raises ``GuestFault``
with the registers untouched and EIP still at the IRET, as a fault leaves them. A
task return (EFLAGS.NT) or a return to virtual-8086 mode raises ``CannotEmulate``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.base import EFLAGS_IF, EFLAGS_NT, EFLAGS_VM

if TYPE_CHECKING:
    from sandbox.backends.kvm.arch_cpu import KvmArchCpu

GP, NP, SS_FAULT = 13, 11, 12
IOPL = 3 << 12
# Flags IRET always restores: CF PF AF ZF SF TF DF OF NT RF AC ID.
ALWAYS = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x100 | 0x400 | 0x800 | EFLAGS_NT | (1 << 16) | (1 << 18) | (1 << 21)
VIF_VIP = (1 << 19) | (1 << 20)


class GuestFault(Exception):
    """The instruction faults: deliver ``vector`` (with ``error_code``) to the guest."""

    def __init__(self, vector: int, error_code: int | None, why: str) -> None:
        super().__init__(why)
        self.vector, self.error_code, self.why = vector, error_code, why


class CannotEmulate(Exception):
    """The instruction is valid but this emulation does not cover that case."""


def interrupt_return(cpu: "KvmArchCpu", size: int) -> None:
    """Execute IRET (``size`` 4: IRETD, 2: the 16-bit IRET) on ``cpu``, in protected mode."""
    regs = cpu.get_regs()
    if regs["eflags"] & EFLAGS_NT:
        raise CannotEmulate("IRET with EFLAGS.NT set is a return to another task (task switching)")
    ss = cpu.segment_cache("ss")
    mask_sp = 0xFFFFFFFF if ss.db else 0xFFFF
    sp = regs["esp"] & mask_sp

    def pop(index: int) -> int:
        return int.from_bytes(cpu.read_linear(ss.base + ((sp + index * size) & mask_sp), size), "little")

    eip, cs, popped_flags = pop(0), pop(1) & 0xFFFF, pop(2)
    cpl = cpu.cpl
    if popped_flags & EFLAGS_VM and cpl == 0 and size == 4:
        raise CannotEmulate("IRET to virtual-8086 mode")
    rpl = cs & 3
    _check_code_segment(cpu, cs, rpl, cpl, eip)
    outer = rpl > cpl
    if outer:
        new_esp, new_ss = pop(3), pop(4) & 0xFFFF
        _check_stack_segment(cpu, new_ss, rpl)
    flags = _new_flags(regs["eflags"], popped_flags, cpl, size)
    # All checks passed: now change the state.
    if outer:
        cpu.load_stack(new_ss, new_esp if size == 4 else new_esp & 0xFFFF)
    else:
        cpu.set_regs(esp=(regs["esp"] & ~mask_sp) | ((sp + 3 * size) & mask_sp))
    cpu.load_protected_cs(cs, eip)
    cpu.set_regs(eflags=flags)
    if outer:
        _drop_inner_data_segments(cpu, rpl)


def _check_code_segment(cpu: "KvmArchCpu", cs: int, rpl: int, cpl: int, eip: int) -> None:
    if cs & ~3 == 0:
        raise GuestFault(GP, 0, "IRET to the null code selector")
    desc = cpu.read_segment_descriptor(cs)
    if desc is None or not desc.is_code:
        raise GuestFault(GP, cs & ~3, f"IRET to selector {cs:#x}, which is not a code segment")
    if rpl < cpl:
        raise GuestFault(GP, cs & ~3, f"IRET from ring {cpl} to ring {rpl} (inward)")
    conforming = bool(desc.access & 0x04)
    if (conforming and desc.dpl > rpl) or (not conforming and desc.dpl != rpl):
        raise GuestFault(GP, cs & ~3, f"IRET to {cs:#x}: descriptor DPL {desc.dpl} does not fit RPL {rpl}")
    if not desc.present:
        raise GuestFault(NP, cs & ~3, f"IRET to {cs:#x}: code segment not present")
    if eip > desc.limit:
        raise GuestFault(GP, 0, f"IRET to {cs:#x}:{eip:#x}, beyond the segment limit {desc.limit:#x}")


def _check_stack_segment(cpu: "KvmArchCpu", ss: int, rpl: int) -> None:
    if ss & ~3 == 0:
        raise GuestFault(GP, 0, "IRET to an outer ring with a null stack selector")
    desc = cpu.read_segment_descriptor(ss)
    writable_data = desc is not None and desc.access & 0x1A == 0x12    # S=1, data, writable
    if not writable_data or ss & 3 != rpl or desc.dpl != rpl:
        raise GuestFault(GP, ss & ~3, f"IRET to ring {rpl} with stack selector {ss:#x}, "
                                      f"not a ring-{rpl} writable data segment")
    if not desc.present:
        raise GuestFault(SS_FAULT, ss & ~3, f"IRET: stack segment {ss:#x} not present")


def _new_flags(old: int, popped: int, cpl: int, size: int) -> int:
    changeable = ALWAYS
    if cpl == 0:
        changeable |= IOPL | VIF_VIP
    if cpl <= (old & IOPL) >> 12:
        changeable |= EFLAGS_IF
    if size == 2:
        changeable &= 0xFFFF
    return (old & ~changeable) | (popped & changeable) | 0x2


def _drop_inner_data_segments(cpu: "KvmArchCpu", new_cpl: int) -> None:
    """Returning to an outer ring, DS/ES/FS/GS that hold a data (or non-conforming code)
    segment more privileged than the new CPL are loaded with the null selector, so ring 3
    cannot keep using ring-0 segments."""
    for name in ("ds", "es", "fs", "gs"):
        cache = cpu.segment_cache(name)
        if cache.unusable:
            continue
        conforming_code = cache.type & 0x8 and cache.type & 0x4
        if cache.dpl < new_cpl and not conforming_code:
            cpu.load_data_segment(name, 0)
