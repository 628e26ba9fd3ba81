"""The port-I/O and MMIO bus: a range map from addresses to devices.

A device is registered at a base address and only ever sees offsets from that base
(Firecracker's ``BusDevice``, kvmtool's ``mmio.c``). Addresses no device claims are
open bus: reads return all ones, writes are dropped, and the first access to each
such address is reported through ``on_unclaimed``.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Callable

from sandbox.devices.base import Device


@dataclass(frozen=True)
class Mapping:
    base: int
    length: int
    device: Device

    @property
    def end(self) -> int:
        return self.base + self.length


class Bus:
    def __init__(self, name: str, on_unclaimed: Callable[[int, int, bool], None] | None = None) -> None:
        self.name = name
        self._starts: list[int] = []
        self._maps: list[Mapping] = []
        self._on_unclaimed = on_unclaimed
        self._reported: set[int] = set()
        self.last: Device | None = None      # the device the latest access reached

    def register(self, base: int, length: int, device: Device) -> None:
        i = bisect.bisect_right(self._starts, base)
        if i > 0 and self._maps[i - 1].end > base:
            raise ValueError(f"{self.name} bus: {device.name} at {base:#x} overlaps {self._maps[i - 1].device.name}")
        if i < len(self._maps) and base + length > self._maps[i].base:
            raise ValueError(f"{self.name} bus: {device.name} at {base:#x} overlaps {self._maps[i].device.name}")
        self._starts.insert(i, base)
        self._maps.insert(i, Mapping(base, length, device))

    def lookup(self, addr: int) -> Mapping | None:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self._maps[i].end:
            return self._maps[i]
        return None

    def mappings(self) -> list[Mapping]:
        return list(self._maps)

    def read(self, addr: int, size: int) -> int:
        m = self.lookup(addr)
        if m is None:
            self.last = None
            self._unclaimed(addr, size, False)
            return (1 << (8 * size)) - 1
        self.last = m.device
        return m.device.read(addr - m.base, size) & ((1 << (8 * size)) - 1)

    def write(self, addr: int, size: int, value: int) -> None:
        m = self.lookup(addr)
        if m is None:
            self.last = None
            self._unclaimed(addr, size, True)
            return
        self.last = m.device
        m.device.write(addr - m.base, size, value & ((1 << (8 * size)) - 1))

    def _unclaimed(self, addr: int, size: int, write: bool) -> None:
        if addr not in self._reported:
            self._reported.add(addr)
            if self._on_unclaimed is not None:
                self._on_unclaimed(addr, size, write)
