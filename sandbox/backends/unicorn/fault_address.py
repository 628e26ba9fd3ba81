"""The exact linear address of a page fault, for CR2.

Unicorn's TLB-fill hook only learns the page that missed. The CPU reports the exact
byte in CR2, and guests print it, so we decode the faulting instruction (capstone)
and recompute its memory operands' addresses; the one that falls in the faulting page
is the answer. Implicit stack and string operands are covered too.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import capstone
from capstone import x86_const as CX

from sandbox.backends.base import CR0_PE

if TYPE_CHECKING:
    from sandbox.backends.unicorn.cpu import UnicornVCpu

_MD32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
_MD16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
_MD32.detail = _MD16.detail = True
_REGS = {CX.X86_REG_EAX: "eax", CX.X86_REG_EBX: "ebx", CX.X86_REG_ECX: "ecx", CX.X86_REG_EDX: "edx",
         CX.X86_REG_ESI: "esi", CX.X86_REG_EDI: "edi", CX.X86_REG_EBP: "ebp", CX.X86_REG_ESP: "esp",
         CX.X86_REG_AX: "eax", CX.X86_REG_BX: "ebx", CX.X86_REG_CX: "ecx", CX.X86_REG_DX: "edx",
         CX.X86_REG_SI: "esi", CX.X86_REG_DI: "edi", CX.X86_REG_BP: "ebp", CX.X86_REG_SP: "esp"}
_SEGS = {CX.X86_REG_CS: "cs", CX.X86_REG_DS: "ds", CX.X86_REG_ES: "es", CX.X86_REG_FS: "fs",
         CX.X86_REG_GS: "gs", CX.X86_REG_SS: "ss"}
_STACK = {"push", "pushal", "pushfd", "pushf", "call", "pop", "popal", "popfd", "ret", "enter", "leave", "iretd"}


def fault_address(cpu: "UnicornVCpu", page: int) -> int:
    try:
        return _decode(cpu, page)
    except Exception:  # an undecodable instruction: the page is still right
        return page


def _decode(cpu: "UnicornVCpu", page: int) -> int:
    regs = cpu.get_regs()
    pm = bool(regs["cr0"] & CR0_PE)
    cs = cpu.read_segment_descriptor(regs["cs"]) if pm else None
    wide = bool(cs.flags & 0x4) if cs else False
    md = _MD32 if wide else _MD16
    code = cpu.read_linear(cpu.linear_pc(), 15)
    insn = next(md.disasm(code, regs["eip"]), None)
    if insn is None:
        return page

    def seg_base(name: str) -> int:
        if not pm:
            return regs[name] << 4
        d = cpu.read_segment_descriptor(regs[name])
        return d.base if d else 0

    mask = 0xFFFFFFFF if wide else 0xFFFF
    candidates = []
    for op in insn.operands:
        if op.type != CX.X86_OP_MEM:
            continue
        m = op.mem
        ea = m.disp
        if m.base in _REGS:
            ea += regs[_REGS[m.base]]
        if m.index in _REGS:
            ea += regs[_REGS[m.index]] * m.scale
        default = "ss" if m.base in (CX.X86_REG_EBP, CX.X86_REG_ESP, CX.X86_REG_BP, CX.X86_REG_SP) else "ds"
        seg = _SEGS.get(m.segment, default)
        candidates.append((seg_base(seg) + (ea & mask), op.size))
    size = 4 if wide else 2
    if insn.mnemonic in _STACK or insn.mnemonic.startswith("push"):
        sp = regs["esp"] & mask
        candidates.append((seg_base("ss") + ((sp - size) & mask), size))
        candidates.append((seg_base("ss") + sp, size))
    if insn.mnemonic.rstrip("bwdq").endswith(("movs", "stos", "lods", "cmps", "scas", "ins", "outs")):
        candidates.append((seg_base("es") + (regs["edi"] & mask), 4))
        candidates.append((seg_base("ds") + (regs["esi"] & mask), 4))
    for addr, n in candidates:
        addr &= 0xFFFFFFFF
        if addr & ~0xFFF == page:
            return addr
        if addr < page <= addr + max(n, 1) - 1:
            return page          # an access that starts in the page before and crosses into it
    return page
