"""One BIOS call in progress: the caller's registers, and how results go back.

A real BIOS returns status in the carry flag of the FLAGS image that ``int`` pushed;
the stub's ``iret`` pops it. So results go to registers (written back once, in
``commit``) and to the stacked FLAGS word at SS:SP+4.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.vm.memory import GuestMemory

_LOW16 = {"ax": "eax", "bx": "ebx", "cx": "ecx", "dx": "edx", "si": "esi", "di": "edi", "bp": "ebp", "sp": "esp"}
_HIGH8 = {"ah": "eax", "bh": "ebx", "ch": "ecx", "dh": "edx"}
_LOW8 = {"al": "eax", "bl": "ebx", "cl": "ecx", "dl": "edx"}
CF, ZF = 0x0001, 0x0040


class BiosCall:
    def __init__(self, vector: int, vcpu: "VCpuBackend", memory: "GuestMemory") -> None:
        self.vector = vector
        self.vcpu = vcpu
        self.memory = memory
        self.regs = vcpu.get_regs()
        self._changed: dict[str, int] = {}

    def __getattr__(self, name: str) -> int:
        regs = self.__dict__["regs"]
        if name in _LOW16:
            return regs[_LOW16[name]] & 0xFFFF
        if name in _HIGH8:
            return (regs[_HIGH8[name]] >> 8) & 0xFF
        if name in _LOW8:
            return regs[_LOW8[name]] & 0xFF
        if name in regs:
            return regs[name]
        raise AttributeError(name)

    def set(self, **values: int) -> None:
        for name, value in values.items():
            if name in _LOW16:
                full, v = _LOW16[name], (self.regs[_LOW16[name]] & ~0xFFFF) | (value & 0xFFFF)
            elif name in _HIGH8:
                full, v = _HIGH8[name], (self.regs[_HIGH8[name]] & ~0xFF00) | ((value & 0xFF) << 8)
            elif name in _LOW8:
                full, v = _LOW8[name], (self.regs[_LOW8[name]] & ~0xFF) | (value & 0xFF)
            else:
                full, v = name, value
            self.regs[full] = v
            self._changed[full] = v

    def commit(self) -> None:
        if self._changed:
            self.vcpu.set_regs(**self._changed)

    # --- the caller's FLAGS, as pushed by ``int`` --------------------------------------
    def _flags_addr(self) -> int:
        return (self.regs["ss"] << 4) + ((self.regs["esp"] + 4) & 0xFFFF)

    def _set_flag(self, bit: int, on: bool) -> None:
        addr = self._flags_addr()
        flags = self.memory.read_u16(addr)
        self.memory.write_u16(addr, flags | bit if on else flags & ~bit)

    def set_cf(self, on: bool) -> None:
        self._set_flag(CF, on)

    def set_zf(self, on: bool) -> None:
        self._set_flag(ZF, on)

    def ok(self, **values: int) -> None:
        """Success: results in registers, carry clear."""
        self.set(**values)
        self.set_cf(False)

    def fail(self, status: int = 0x01) -> None:
        """Failure: AH = status, carry set (the int 13h/15h convention)."""
        self.set(ah=status)
        self.set_cf(True)

    # Real-mode far pointers.
    def linear(self, segment: int, offset: int) -> int:
        return ((segment & 0xFFFF) << 4) + (offset & 0xFFFF)

    def describe(self) -> dict[str, Any]:
        return {"vector": self.vector, "ah": self.ah, "al": self.al}
