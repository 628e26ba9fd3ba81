"""ACPI PM1a control register (0x604, as on QEMU's PC): how an OS switches the machine off.

An ACPI OS writes the S5 sleep type with SLP_EN (bit 13) set; this machine then
powers off. Hobby OSes written for QEMU do the same with ``outw(0x604, 0x2000)``.
"""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext

SCI_EN = 1 << 0           # ACPI mode enabled (reads back as written)
SLP_TYP_SHIFT = 10        # bits 12-10: the sleep state to enter
SLP_EN = 1 << 13          # write-only: enter that sleep state now


class AcpiPm1Control(Device):
    description = "The ACPI PM1a control register: writing the sleep-enable bit switches the machine off."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.value = 0

    def reset(self) -> None:
        self.value = 0

    def read(self, offset: int, size: int) -> int:
        return (self.value >> (8 * offset)) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        shift, mask = 8 * offset, ((1 << (8 * size)) - 1) << (8 * offset)
        merged = ((self.value & ~mask) | (value << shift)) & 0xFFFF
        self.value = merged & ~SLP_EN          # SLP_EN always reads 0
        if merged & SLP_EN:
            self.ctx.power_off("ACPI power-off", 0)

    def state(self) -> dict[str, Any]:
        return {"pm1a_control": self.value, "sci_enabled": bool(self.value & SCI_EN),
                "sleep_type": (self.value >> SLP_TYP_SHIFT) & 7}
