"""A KVM vCPU seen as an "architectural CPU", for the instructions KVM cannot do itself.

``sandbox.vm.interrupt_delivery`` (and ``iret.py``) work on a small interface: read and
write registers, the IDTR, linear memory, descriptors, the TSS, and load a segment
register with what its descriptor says. ``KvmArchCpu`` implements it on top of one
``KVM_GET_REGS`` + ``KVM_GET_SREGS``: everything happens on those two structures, in
Python, and ``commit()`` writes them back with one ``KVM_SET_REGS`` + ``KVM_SET_SREGS``.

Loading a segment register is where KVM differs from a real CPU: the CPU reads the
descriptor from the GDT and fills the hidden descriptor cache itself, whereas
KVM_SET_SREGS takes the cache (base, limit, type, DPL, D/B, G...) as data. So a
``load_*`` here reads the descriptor and builds the cache (``segments.from_descriptor``),
exactly what ``mov ss, ax`` or a far jump would have done.

Use it only while the vCPU is not inside ``KVM_RUN`` (from its own thread, between exits).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.base import CONTROL, CR0_PE, CR0_PG, GPRS, SEGMENTS
from sandbox.backends.kvm import abi, segments
from sandbox.backends.kvm.errors import KvmError
from sandbox.host.ram import PAGE
from sandbox.vm.descriptors import Segment, parse_segment

if TYPE_CHECKING:
    from sandbox.backends.kvm.vcpu import KvmVCpu

MASK32 = 0xFFFFFFFF
_GENERAL = {name: "r" + name[1:] for name in GPRS} | {"eip": "rip", "eflags": "rflags"}


class KvmArchCpu:
    def __init__(self, vcpu: "KvmVCpu") -> None:
        self.vcpu = vcpu
        self.host = vcpu.host
        self.memory = vcpu.memory
        self.regs = vcpu._regs()
        self.sregs = vcpu._sregs()

    # --- registers ------------------------------------------------------------------------
    def get_regs(self) -> dict[str, int]:
        out = {name: getattr(self.regs, field) & MASK32 for name, field in _GENERAL.items()}
        out.update({seg: getattr(self.sregs, seg).selector for seg in SEGMENTS})
        out.update({cr: getattr(self.sregs, cr) & MASK32 for cr in CONTROL})
        return out

    def set_regs(self, **values: int) -> None:
        for name, value in values.items():
            if name in _GENERAL:
                setattr(self.regs, _GENERAL[name], value & MASK32)
            elif name in SEGMENTS:
                setattr(self.sregs, name, self._segment(name, value))
            elif name in CONTROL:
                setattr(self.sregs, name, value & MASK32)
            else:
                raise KvmError(f"unknown register {name!r}")

    @property
    def protected(self) -> bool:
        return bool(self.sregs.cr0 & CR0_PE)

    @property
    def cpl(self) -> int:
        return self.sregs.cs.selector & 3 if self.protected else 0

    def idtr(self) -> tuple[int, int]:
        return self.sregs.idt.base, self.sregs.idt.limit

    # --- memory, by linear address ----------------------------------------------------------
    def _physical(self, linear: int, write: bool) -> int:
        if not self.sregs.cr0 & CR0_PG:
            return linear & MASK32
        t = abi.kvm_translation(linear_address=linear & MASK32)   # the guest's page tables
        abi.ioctl(self.vcpu.fd, abi.KVM_TRANSLATE, t)
        if not t.valid or (write and not t.writeable):
            raise KvmError(f"linear address {linear & MASK32:#x} is not mapped"
                           + (" writable" if write and t.valid else ""))
        return t.physical_address

    def read_linear(self, linear: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            n = min(length, PAGE - (linear & (PAGE - 1)))
            out += self.memory.read(self._physical(linear, False), n)
            linear, length = linear + n, length - n
        return bytes(out)

    def write_linear(self, linear: int, data: bytes, supervisor: bool = True) -> None:
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, PAGE - (linear & (PAGE - 1)))
            self.memory.write(self._physical(linear, True), data[pos:pos + n])
            linear, pos = linear + n, pos + n

    # --- descriptors ----------------------------------------------------------------------------
    def read_segment_descriptor(self, selector: int) -> Segment | None:
        if selector & ~3 == 0:
            return None
        table = self.sregs.ldt if selector & 4 else self.sregs.gdt
        index = selector & ~7
        if index + 7 > table.limit:
            return None
        return parse_segment(self.read_linear(table.base + index, 8))

    def tss_stack(self, cpl: int, size: int) -> tuple[int, int]:
        base = self.sregs.tr.base
        if size == 4:
            raw = self.read_linear(base + 4 + cpl * 8, 8)
            return int.from_bytes(raw[4:6], "little"), int.from_bytes(raw[:4], "little")
        raw = self.read_linear(base + 2 + cpl * 4, 4)
        return int.from_bytes(raw[2:4], "little"), int.from_bytes(raw[:2], "little")

    def _segment(self, name: str, selector: int) -> abi.kvm_segment:
        """The descriptor cache that loading ``selector`` into ``name`` gives."""
        if not self.protected:
            return segments.real_mode(selector, code=name == "cs")
        desc = self.read_segment_descriptor(selector)
        if desc is None:
            if selector & ~3 == 0 and name not in ("cs", "ss"):
                return segments.null(selector)
            raise KvmError(f"cannot load {name} = {selector:#x}: no such descriptor")
        return segments.from_descriptor(selector, desc)

    # --- segment loads with their descriptor caches (the CPU's job, done here) ------------------
    def load_stack(self, ss: int, esp: int) -> None:
        """SS and ESP at any privilege level (IRET to an outer ring uses this too)."""
        self.sregs.ss = self._segment("ss", ss)
        self.regs.rsp = esp & MASK32

    load_ring0_stack = load_stack

    def load_protected_cs(self, selector: int, eip: int) -> None:
        self.sregs.cs = self._segment("cs", selector)
        self.regs.rip = eip & MASK32

    def load_real_mode_cs(self, cs: int, ip: int) -> None:
        self.sregs.cs = segments.real_mode(cs, code=True)
        self.regs.rip = ip & 0xFFFF

    def load_data_segment(self, name: str, selector: int) -> None:
        setattr(self.sregs, name, self._segment(name, selector))

    def segment_cache(self, name: str) -> abi.kvm_segment:
        return getattr(self.sregs, name)

    # --- done ----------------------------------------------------------------------------------
    def commit(self) -> None:
        """Write the registers back: one KVM_SET_SREGS and one KVM_SET_REGS."""
        abi.ioctl(self.vcpu.fd, abi.KVM_SET_SREGS, self.sregs)
        abi.ioctl(self.vcpu.fd, abi.KVM_SET_REGS, self.regs)
