"""System control port A (0x92): the "fast A20" gate and a fast reset.

Bit 1 enables address line 20 (when it is off, addresses wrap at 1 MiB as on the
8086); a 0-to-1 change of bit 0 resets the machine. Reads return what was written.
As in QEMU, every write drives the A20 line, so the last of port 0x92 and the
keyboard controller's output port to be written decides it.
"""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext

RESET, A20 = 0x01, 0x02


class Port92(Device):
    description = "System control port A: the fast A20 gate and a fast machine reset."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.value = A20   # the firmware leaves A20 on, as SeaBIOS does

    def reset(self) -> None:
        self.value = A20   # the firmware leaves A20 on, as SeaBIOS does

    def read(self, offset: int, size: int) -> int:
        return self.value

    def write(self, offset: int, size: int, value: int) -> None:
        old, self.value = self.value, value & 0xFF
        self.ctx.set_a20(bool(value & A20))
        if value & RESET and not old & RESET:
            self.ctx.reset()

    def state(self) -> dict[str, Any]:
        return {"value": self.value, "a20": bool(self.value & A20)}
