"""A KVM vCPU's registers: KVM_GET/SET_REGS and _SREGS, as the VCpuBackend interface wants them.

KVM keeps a vCPU's state in two blocks: ``kvm_regs`` (general registers, RIP, RFLAGS,
64 bits wide even for a 32-bit guest) and ``kvm_sregs`` (segment registers *with their
descriptor caches*, the descriptor tables, control registers). ``KvmRegisters`` is the
part of ``KvmVCpu`` that reads and writes them; a segment register write builds the
cache the CPU would load (``segments.py``). Only while the vCPU is not in KVM_RUN.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.base import ALL_REGS, CONTROL, CR0_PE, CR0_PG, GPRS, SEGMENTS, FlatProtectedMode
from sandbox.backends.kvm import abi, io_rip, segments
from sandbox.backends.kvm.errors import KvmError
from sandbox.host.ram import PAGE

if TYPE_CHECKING:
    from sandbox.vm.memory import GuestMemory

MASK32 = 0xFFFFFFFF
CR0_ET = 1 << 4                  # "extension type": hardwired to 1 on every CPU since the 486


class KvmRegisters:
    """Mixed into KvmVCpu, which provides ``fd``, ``memory`` and the OUT being served."""
    fd: int
    memory: "GuestMemory"
    _out_exit: tuple[int, int] | None
    _out_eip: int | None

    # --- raw register blocks ---------------------------------------------------------------
    def _regs(self) -> abi.kvm_regs:
        regs = abi.kvm_regs()
        abi.ioctl(self.fd, abi.KVM_GET_REGS, regs)
        return regs

    def _sregs(self) -> abi.kvm_sregs:
        sregs = abi.kvm_sregs()
        abi.ioctl(self.fd, abi.KVM_GET_SREGS, sregs)
        return sregs

    # --- VCpuBackend: registers ------------------------------------------------------------
    def get_regs(self) -> dict[str, int]:
        regs, sregs = self._regs(), self._sregs()
        out = {name: getattr(regs, "r" + name[1:]) & MASK32 for name in GPRS}   # eax <- rax
        out["eip"] = regs.rip & MASK32
        out["eflags"] = regs.rflags & MASK32
        out.update({seg: getattr(sregs, seg).selector for seg in SEGMENTS})
        out.update({cr: getattr(sregs, cr) & MASK32 for cr in CONTROL})
        if self._out_exit is not None:           # serving an OUT: show its address
            if self._out_eip is None:
                self._out_eip = io_rip.out_instruction_eip(self, regs, sregs, *self._out_exit)
            out["eip"] = self._out_eip
        return out

    def set_regs(self, **values: int) -> None:
        unknown = sorted(set(values) - set(ALL_REGS))
        if unknown:
            raise KvmError(f"unknown register {unknown[0]!r} (known: {', '.join(ALL_REGS)})")
        general = {k: v for k, v in values.items() if k in GPRS or k in ("eip", "eflags")}
        if general:
            regs = self._regs()
            for name, value in general.items():
                field = {"eip": "rip", "eflags": "rflags"}.get(name, "r" + name[1:])
                setattr(regs, field, value & MASK32)
            abi.ioctl(self.fd, abi.KVM_SET_REGS, regs)
        special = {k: v for k, v in values.items() if k in SEGMENTS or k in CONTROL}
        if special:
            sregs = self._sregs()
            for cr in CONTROL:
                if cr in special:
                    setattr(sregs, cr, special[cr] & MASK32)
            for seg in SEGMENTS:
                if seg in special:
                    setattr(sregs, seg, self._load_segment(sregs, seg, special[seg]))
            abi.ioctl(self.fd, abi.KVM_SET_SREGS, sregs)

    def _load_segment(self, sregs: abi.kvm_sregs, name: str, selector: int) -> abi.kvm_segment:
        """What ``mov <seg>, selector`` would put in the descriptor cache."""
        if not sregs.cr0 & CR0_PE:
            return segments.real_mode(selector, code=name == "cs")
        return segments.from_gdt(self.memory, sregs.gdt.base, sregs.gdt.limit, selector)

    def set_real_mode(self, cs: int, ip: int) -> None:
        sregs = self._sregs()
        for seg in SEGMENTS:
            setattr(sregs, seg, segments.real_mode(cs if seg == "cs" else 0, code=seg == "cs"))
        sregs.tr, sregs.ldt = segments.reset_tr(), segments.reset_ldt()
        sregs.idt.base, sregs.idt.limit = 0, 0x3FF          # the real-mode IVT at 0
        sregs.cr0 = (sregs.cr0 | CR0_ET) & ~(CR0_PE | CR0_PG | 0x60000000)   # caches on (CD/NW off)
        sregs.cr4 = sregs.efer = 0
        abi.ioctl(self.fd, abi.KVM_SET_SREGS, sregs)
        regs = self._regs()
        regs.rip, regs.rflags = ip & 0xFFFF, 0x2
        abi.ioctl(self.fd, abi.KVM_SET_REGS, regs)

    def enter_flat_protected_mode(self, pm: FlatProtectedMode, eip: int) -> None:
        sregs = self._sregs()
        sregs.gdt.base, sregs.gdt.limit = pm.gdt_base, pm.gdt_limit
        sregs.cr0 = (sregs.cr0 | CR0_PE | CR0_ET) & ~(CR0_PG | 0x60000000)
        sregs.cr4 = sregs.efer = 0
        sregs.cs = segments.from_gdt(self.memory, pm.gdt_base, pm.gdt_limit, pm.code)
        data = segments.from_gdt(self.memory, pm.gdt_base, pm.gdt_limit, pm.data)
        for seg in ("ds", "es", "fs", "gs", "ss"):
            setattr(sregs, seg, data)
        sregs.tr, sregs.ldt = segments.reset_tr(), segments.reset_ldt()
        abi.ioctl(self.fd, abi.KVM_SET_SREGS, sregs)
        regs = self._regs()
        regs.rip, regs.rflags = eip & MASK32, 0x2
        abi.ioctl(self.fd, abi.KVM_SET_REGS, regs)

    def read_linear(self, linear: int, length: int) -> bytes:
        """Guest bytes at a linear address, through the guest's page tables if paging is on
        (KVM_TRANSLATE walks them). Empty if the address is not mapped."""
        return self._read_linear(self._sregs(), linear, length)

    def _read_linear(self, sregs: abi.kvm_sregs, linear: int, length: int) -> bytes:
        out = b""
        while length > 0:
            n = min(length, PAGE - (linear & (PAGE - 1)))
            gpa = linear & MASK32
            if sregs.cr0 & CR0_PG:
                t = abi.kvm_translation(linear_address=linear)
                abi.ioctl(self.fd, abi.KVM_TRANSLATE, t)
                if not t.valid:
                    return b""
                gpa = t.physical_address
            out += self.memory.read(gpa, n)
            linear += n
            length -= n
        return out
