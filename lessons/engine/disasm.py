"""The instruction a vCPU is about to execute, as text, for single-step traces."""
from __future__ import annotations

from typing import TYPE_CHECKING

import capstone

if TYPE_CHECKING:
    from sandbox.vm.vcpu import VCpu

CR0_PE = 1
_ENGINES = {bits: capstone.Cs(capstone.CS_ARCH_X86, mode)
            for bits, mode in ((16, capstone.CS_MODE_16), (32, capstone.CS_MODE_32))}


def code_bits(vcpu: "VCpu") -> int:
    """16 in real mode; in protected mode the D bit of the code segment decides."""
    backend = vcpu.backend
    regs = backend.get_regs()
    if not regs["cr0"] & CR0_PE:
        return 16
    read = getattr(backend, "read_segment_descriptor", None)
    seg = read(regs["cs"]) if read is not None else None
    return 32 if seg is None or seg.flags & 0x4 else 16


def current_instruction(vcpu: "VCpu") -> str:
    """``0000:7c00  cli`` (real mode) or ``00100010  mov eax, 1`` (protected mode)."""
    backend = vcpu.backend
    regs = backend.get_regs()
    bits = code_bits(vcpu)
    where = f"{regs['cs']:04x}:{regs['eip']:04x}" if bits == 16 and not regs["cr0"] & CR0_PE \
        else f"{regs['eip']:08x}"
    try:
        linear = backend.linear_pc()
        code = backend.read_linear(linear, 15)
    except (AttributeError, NotImplementedError):
        return f"{where}  (this backend cannot read guest code)"
    for insn in _ENGINES[bits].disasm(code, linear, 1):
        return f"{where}  {insn.mnemonic} {insn.op_str}".rstrip()
    return f"{where}  (undecodable bytes {code[:4].hex()})"
