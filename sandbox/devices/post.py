"""Port 0x80, the POST diagnostic port: firmware writes progress codes here, and
Linux writes to it only to wait about a microsecond (``io_delay``). Claiming it keeps
those writes from being reported as unknown ports; the last code is kept for the
inspector, as a POST card's two-digit display would show it. Reads give 0xFF, as in QEMU."""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext


class PostPort(Device):
    description = "The POST diagnostic port 0x80: firmware progress codes, and the I/O delay port of Linux."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.last = 0
        self.writes = 0

    def reset(self) -> None:
        self.last = 0

    def read(self, offset: int, size: int) -> int:
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        self.last = value & 0xFF
        self.writes += 1

    def state(self) -> dict[str, Any]:
        return {"last_code": self.last, "writes": self.writes}
