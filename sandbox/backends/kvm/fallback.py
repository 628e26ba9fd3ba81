"""What the KVM backend adds on a paravirtual host (kvm_pvm) so 32-bit kernels run.

kvm_pvm has no VT-x/AMD-V underneath: it runs every instruction of a 32-bit guest in
KVM's instruction emulator (~2 MIPS), and that emulator has gaps. Each gap, what goes
wrong, and what the sandbox does instead (measured on such a host, see docs/kvm.md):

1. ``int n`` / ``iret`` in protected mode: KVM implements them for real mode only and
   exits with "could not emulate an instruction", EIP at it. We decode the instruction
   and do it in Python (``emulate.py``: the shared IDT delivery, ``iret.py``).
2. External interrupts in protected mode: KVM_INTERRUPT works for 32-bit gates but
   pushes a 32-bit frame through a 16-bit gate. We deliver them with the same shared
   code as the Unicorn backend (``sandbox.vm.interrupt_delivery``).
3. ``int n`` in ring 3 (a system call): the emulator fails as in 1, but at CPL 3 KVM
   does not exit; it gives the guest a #UD exception instead (even with
   KVM_CAP_EXIT_ON_EMULATION_FAILURE). So while the guest is in 32-bit ring 3 we
   single-step it (KVM_SET_GUEST_DEBUG), look at each next instruction, and do an
   ``int n`` ourselves before KVM can get it wrong. Ring-3 code then runs at tens of
   thousands of instructions per second; the kernel, in ring 0, is not slowed.

What still cannot run is in ``pvm_limits.py`` (32-bit paging). None of this is used
with VT-x/AMD-V (``probe().paravirtual`` is False there): the CPU does it all.
"""
from __future__ import annotations

import collections
from typing import TYPE_CHECKING

from sandbox.backends.kvm import emulate, pvm_limits
from sandbox.backends.kvm.arch_cpu import KvmArchCpu
from sandbox.backends.kvm.iret import CannotEmulate
from sandbox.vm.exits import CrashExit, Exit, StepExit
from sandbox.vm.interrupt_delivery import TripleFault, deliver

if TYPE_CHECKING:
    from sandbox.backends.kvm.vcpu import KvmVCpu

MASK32 = 0xFFFFFFFF
NOT_MINE = object()             # "the fallback has nothing to do with this exit"


class PvmFallback:
    def __init__(self, vcpu: "KvmVCpu") -> None:
        self.vcpu = vcpu
        self.emulated: collections.Counter[str] = collections.Counter()   # mnemonic -> count
        self.watching = False           # single-stepping 32-bit ring-3 code (gap 3)
        self.watched_steps = 0
        self.host_limit: str | None = None   # the pvm_limits name that stopped the guest

    def reset(self) -> None:
        """The vCPU was put back in real mode (power-on, reset)."""
        self.host_limit = None
        if self.watching:
            self._watch(False)

    # --- gap 1: an instruction KVM could not emulate ------------------------------------------
    def emulation_failed(self, where: str) -> Exit | None:
        """Do the instruction KVM gave up on; one we do not know stops the guest, with
        its name (the emulator's own gap: see pvm_limits)."""
        cpu = KvmArchCpu(self.vcpu)
        result = self._emulate(cpu, where)
        if result is not NOT_MINE:
            return result
        insn = emulate.decode(cpu)
        name = f"{insn.mnemonic} {insn.op_str}".strip() if insn is not None else "an undecodable instruction"
        return self._stop("instruction", f"{name} at {where}")

    def _emulate(self, cpu: KvmArchCpu, where: str) -> "Exit | None | object":
        try:
            mnemonic = emulate.emulate(cpu)
        except TripleFault as tf:
            return CrashExit(str(tf))
        except CannotEmulate as e:
            return self.crash(f"KVM internal error at {where}: {e}")
        if mnemonic is None:
            return NOT_MINE
        cpu.commit()
        self.emulated[mnemonic] += 1
        return self._resume(cpu)

    def _resume(self, cpu: KvmArchCpu) -> Exit | None:
        """After we changed the state: into the guest again, watching ring 3."""
        vcpu = self.vcpu
        vcpu.vm.sync_if_stale()         # the frame push may have copied a shared page
        limit = pvm_limits.limit_hit(cpu.sregs)
        if limit is not None:
            return self._stop(limit, f"the guest went to {cpu.sregs.cs.selector:04x}:"
                                     f"{cpu.regs.rip & MASK32:08x}")
        self._watch(cpu.cpl == 3)
        if self.watching:               # the first ring-3 instruction is checked now
            result = self._next_instruction(cpu)
            if result is not NOT_MINE:
                return result
        if vcpu.stepping:
            return StepExit(address=(cpu.sregs.cs.base + cpu.regs.rip) & MASK32)
        return None

    # --- gap 2: external interrupts ----------------------------------------------------------------
    def interrupt(self, vector: int) -> bool:
        """Deliver ``vector`` to a protected-mode guest (True); False: not in protected
        mode, let KVM_INTERRUPT do it. ``TripleFault`` propagates to the machine."""
        cpu = KvmArchCpu(self.vcpu)
        if not cpu.protected:
            return False
        deliver(cpu, vector & 0xFF)
        cpu.commit()
        self.vcpu.vm.sync_if_stale()
        self._watch(cpu.cpl == 3)
        return True

    # --- gap 3: ring 3, one instruction at a time -----------------------------------------------
    def debug_exit(self) -> "Exit | None | object":
        """A single-step exit while watching ring 3: look at the next instruction."""
        if not self.watching:
            return NOT_MINE
        cpu = KvmArchCpu(self.vcpu)
        if cpu.cpl != 3:                # an exception took the guest to ring 0
            self._watch(False)
            return None
        self.watched_steps += 1
        result = self._next_instruction(cpu)
        return None if result is NOT_MINE else result

    def before_debugger_step(self) -> Exit | None:
        """The debugger steps ring-3 code: an ``int n`` is done here, as one step."""
        if not self.watching:
            return None
        cpu = KvmArchCpu(self.vcpu)
        result = self._next_instruction(cpu)
        if result is None:              # done: the step ends at the handler's first instruction
            return StepExit(address=(cpu.sregs.cs.base + cpu.regs.rip) & MASK32)
        return None if result is NOT_MINE else result

    def _next_instruction(self, cpu: KvmArchCpu) -> "Exit | None | object":
        opcode = cpu.read_linear(cpu.sregs.cs.base + (cpu.regs.rip & MASK32), 2)
        if not opcode or not (opcode[0] in RING3_TRAPS or opcode[:2] == b"\x66\xcf"):
            return NOT_MINE             # an ordinary instruction: let KVM run it
        return self._emulate(cpu, f"{cpu.sregs.cs.selector:04x}:{cpu.regs.rip & MASK32:08x}")

    def _watch(self, on: bool) -> None:
        if on != self.watching:
            self.watching = on
            self.vcpu.update_guest_debug()

    # --- what cannot be done ---------------------------------------------------------------------
    def crash(self, reason: str) -> CrashExit:
        """A crash; if the state is one kvm_pvm cannot run, say that instead."""
        limit = pvm_limits.limit_hit(self.vcpu._sregs(), self.vcpu._regs(),
                                     self.vcpu.read_linear)
        return self._stop(limit, reason) if limit else CrashExit(reason)

    def _stop(self, limit: str, detail: str) -> CrashExit:
        self.host_limit = limit
        return CrashExit(f"{pvm_limits.describe(limit)} ({detail})")


# First opcode bytes of the instructions gap 3 must catch in ring 3: int n, int3, into, iret.
RING3_TRAPS = frozenset({0xCD, 0xCC, 0xCE, 0xCF})
