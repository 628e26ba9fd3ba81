"""The emulation fallback: protected-mode instructions a paravirtual KVM cannot emulate.

On kvm_pvm every ring-0 instruction of a 32-bit guest runs in KVM's instruction
emulator, which implements ``int n`` and ``iret`` for real mode only. When it meets one
in protected mode it gives up: KVM_RUN returns KVM_EXIT_INTERNAL_ERROR ("could not
emulate an instruction") with EIP at the instruction. The backend then decodes that
instruction (capstone) and, if it is in ``EMULATED``, does it here, on the vCPU's
registers (``KvmArchCpu``), with the same architectural code the Unicorn backend uses
(``sandbox.vm.interrupt_delivery``) plus ``iret.py``, and enters the guest again.
``fallback.py`` decides when; this module only knows how.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import capstone

from sandbox.backends.kvm.arch_cpu import KvmArchCpu
from sandbox.backends.kvm.iret import GuestFault, interrupt_return
from sandbox.vm.interrupt_delivery import deliver

if TYPE_CHECKING:
    from capstone import CsInsn

_MD32 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_32)
_MD16 = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16)
EFLAGS_OF = 1 << 11
MAX_INSTRUCTION = 15


def decode(cpu: KvmArchCpu) -> "CsInsn | None":
    """The instruction at CS:EIP, decoded for the code segment's default size."""
    cs = cpu.segment_cache("cs")
    eip = cpu.regs.rip & (0xFFFFFFFF if cs.db else 0xFFFF)
    code = cpu.read_linear(cs.base + eip, MAX_INSTRUCTION)
    return next((_MD32 if cs.db else _MD16).disasm(code, eip, 1), None)


def _software_interrupt(cpu: KvmArchCpu, insn: "CsInsn", vector: int) -> None:
    """``int n``: the return address is the next instruction; the gate's DPL is checked."""
    after = insn.address + insn.size
    cpu.host.publish("irq.deliver", vector=vector, error_code=None, eip=after, software=True)
    cpu.set_regs(eip=after)
    deliver(cpu, vector, None, software=True)


def _int_n(cpu: KvmArchCpu, insn: "CsInsn") -> None:
    _software_interrupt(cpu, insn, insn.bytes[-1])


def _int3(cpu: KvmArchCpu, insn: "CsInsn") -> None:
    _software_interrupt(cpu, insn, 3)


def _into(cpu: KvmArchCpu, insn: "CsInsn") -> None:
    if cpu.regs.rflags & EFLAGS_OF:
        _software_interrupt(cpu, insn, 4)
    else:
        cpu.set_regs(eip=insn.address + insn.size)


def _iret(cpu: KvmArchCpu, insn: "CsInsn") -> None:
    # capstone names the 32-bit form "iretd" in either code size (66 prefix or not).
    interrupt_return(cpu, 4 if insn.mnemonic == "iretd" else 2)


# mnemonic -> (emulation, what it does). Everything else stays an emulation failure.
EMULATED: dict[str, tuple[Callable[[KvmArchCpu, "CsInsn"], None], str]] = {
    "int": (_int_n, "software interrupt: push the frame, vector through the IDT"),
    "int3": (_int3, "breakpoint trap: vector 3 through the IDT"),
    "into": (_into, "overflow trap: vector 4 if EFLAGS.OF, else nothing"),
    "iretd": (_iret, "return from an interrupt (32-bit frame), maybe to an outer ring"),
    "iret": (_iret, "return from an interrupt (16-bit frame)"),
}


def emulate(cpu: KvmArchCpu) -> str | None:
    """Do the protected-mode instruction at CS:EIP on ``cpu`` if it is one of ``EMULATED``;
    returns its mnemonic, or None (not ours: the failure stands). The caller commits.
    A fault the instruction raises (a bad IRET frame, say) is delivered to the guest as
    the CPU would; ``TripleFault`` and ``CannotEmulate`` propagate."""
    if not cpu.protected:
        return None
    insn = decode(cpu)
    entry = EMULATED.get(insn.mnemonic) if insn is not None else None
    if entry is None:
        return None
    try:
        entry[0](cpu, insn)
    except GuestFault as fault:         # raised before any register changed: EIP is at it
        cpu.host.publish("cpu.fault", vector=fault.vector, error_code=fault.error_code,
                         eip=insn.address, software=False)
        deliver(cpu, fault.vector, fault.error_code)
    return insn.mnemonic
