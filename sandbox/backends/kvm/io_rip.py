"""Where was the OUT instruction? Finding it from the bytes just before EIP.

When VT-x or AMD-V exits on IN/OUT, the guest's EIP still points *at* the instruction
(KVM advances it when the hypervisor re-enters), and the Unicorn backend shows the
same. But when KVM *emulates* the instruction (kvm_pvm emulates all ring-0 and
real-mode code; string I/O is always emulated), an OUT has already advanced EIP past
itself by the time the exit reaches us. Code that identifies an I/O call site by EIP
(the BIOS's ``out 0xB2`` service stubs) needs the instruction's own address, so the
backend decodes backwards: which OUT encoding ends exactly at EIP and matches the
exit's port and size?

    E6 ib / E7 ib    out imm8, al / ax / eax      (port = imm8)
    EE    / EF       out dx, al / ax / eax        (port = DX)
    6E    / 6F       outsb / outsw / outsd        (port = DX), maybe rep/segment prefixes
    66               operand-size prefix: needed for 16-bit data in 32-bit code and
                     for 32-bit data in 16-bit code
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.backends.kvm.abi import kvm_regs, kvm_sregs
    from sandbox.backends.kvm.vcpu import KvmVCpu

SEGMENT_PREFIXES = frozenset({0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65})
REP = 0xF3
OPSIZE = 0x66


def out_length(before: bytes, port: int, size: int, dx: int, default32: bool) -> int | None:
    """Length of the OUT/OUTS instruction that ends at the end of ``before`` (the bytes
    just before EIP, at least 5 of them when available), or None if no encoding fits."""
    wide = size != 1
    needs_66 = size == (2 if default32 else 4)

    def opsize_ok(start: int) -> int | None:
        """Length including a 66 prefix where the size needs one."""
        if not needs_66:
            return len(before) - start
        if start >= 1 and before[start - 1] == OPSIZE:
            return len(before) - start + 1
        return None

    n = len(before)
    # out imm8, al/ax/eax
    if n >= 2 and port < 0x100 and before[-2] == (0xE7 if wide else 0xE6) and before[-1] == port:
        found = opsize_ok(n - 2)
        if found:
            return found
    if dx & 0xFFFF != port:
        return None
    # out dx, al/ax/eax
    if n >= 1 and before[-1] == (0xEF if wide else 0xEE):
        found = opsize_ok(n - 1)
        if found:
            return found
    # outs, with rep / segment override / operand size in front (each at most once)
    if n >= 1 and before[-1] == (0x6F if wide else 0x6E):
        start, seen = n - 1, set()
        while start > 0:
            prefix = before[start - 1]
            kind = "seg" if prefix in SEGMENT_PREFIXES else prefix if prefix in (REP, OPSIZE) else None
            if kind is None or kind in seen or (prefix == OPSIZE and not needs_66):
                break
            seen.add(kind)
            start -= 1
        if (OPSIZE in seen) == needs_66:
            return n - start
    return None


def out_instruction_eip(vcpu: "KvmVCpu", regs: "kvm_regs", sregs: "kvm_sregs", port: int, size: int) -> int:
    """The address of the OUT being served. Complete it first: if that moves EIP, EIP
    was at the instruction (KVM's fast path, as on VT-x/AMD-V); if not, KVM had
    emulated it and EIP is already past it, so decode backwards."""
    before = regs.rip
    vcpu.complete_pending()
    if vcpu._regs().rip != before:
        return before & 0xFFFFFFFF
    end = sregs.cs.base + before
    start = max(end - 5, 0)
    length = out_length(vcpu._read_linear(sregs, start, end - start), port, size, regs.rdx,
                        bool(sregs.cs.db))
    if not length:
        return before & 0xFFFFFFFF
    protected = sregs.cr0 & 1
    return (before - length) & (0xFFFFFFFF if protected else 0xFFFF)
