"""System control port B (0x61): the speaker gate and the PIT channel 2 wires.

Bit 0 drives PIT channel 2's GATE, bit 1 lets channel 2's output reach the speaker,
bit 4 is the DRAM refresh toggle (here it flips on every read, so delay loops that
count toggles still terminate, deterministically) and bit 5 shows channel 2's OUT,
which guests poll to calibrate their delay loops.
"""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext
from sandbox.devices.pit8254 import PIT_HZ, Pit8254

GATE2, SPEAKER, PARITY_CHECK_OFF, IOCHK_OFF = 0x01, 0x02, 0x04, 0x08
REFRESH, OUT2 = 0x10, 0x20

BITS = {
    0: "PIT channel 2 gate (read/write)",
    1: "speaker data enable (read/write)",
    2: "parity check disable (read/write)",
    3: "channel check disable (read/write)",
    4: "refresh toggle (read only: flips on each read)",
    5: "PIT channel 2 output (read only)",
    6: "channel check error (read only, always 0)",
    7: "parity error (read only, always 0)",
}


class PortB(Device):
    description = "System control port B: gates PIT channel 2, switches the speaker and shows the timer's output."

    def __init__(self, name: str, ctx: DeviceContext | None, pit: Pit8254) -> None:
        super().__init__(name, ctx)
        self.pit = pit
        self.control = 0
        self.refresh = False

    def reset(self) -> None:
        self.control = 0
        self.refresh = False

    def read(self, offset: int, size: int) -> int:
        self.refresh = not self.refresh
        return (self.control | (REFRESH if self.refresh else 0)
                | (OUT2 if self.pit.output(2) else 0))

    def write(self, offset: int, size: int, value: int) -> None:
        self.control = value & 0x0F
        self.pit.set_gate(2, bool(value & GATE2))

    def state(self) -> dict[str, Any]:
        ch2 = self.pit.channels[2]
        sounding = bool(self.control & GATE2 and self.control & SPEAKER and ch2.mode == 3)
        return {"control": self.control, "gate2": bool(self.control & GATE2),
                "speaker_enabled": bool(self.control & SPEAKER),
                "tone_hz": PIT_HZ / ch2.count if sounding else None}
