"""QEMU's isa-debug-exit device at 0xF4: a test guest ends the VM with a status.

Writing ``v`` stops the machine with exit status ``(v << 1) | 1``, exactly as QEMU
does (so a status is always odd and 0 can never be confused with "exited cleanly").
Registered with four ports like ``-device isa-debug-exit,iobase=0xf4,iosize=0x04``.
"""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext


class DebugExit(Device):
    description = "QEMU's isa-debug-exit port: a write ends the VM with status (value << 1) | 1, for test guests."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.last: int | None = None

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        self.last = value
        self.ctx.power_off("isa-debug-exit", (value << 1) | 1)

    def state(self) -> dict[str, Any]:
        return {"last_value": self.last}
