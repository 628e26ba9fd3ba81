"""What every device model is: something on a bus that sees offsets only.

A device is built with a ``DeviceContext`` (its wiring into the machine: interrupt
lines, the guest clock, an event publisher and the few machine-level actions such
as power-off) and never learns where on the bus it lives.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


class IrqLine:
    """One interrupt wire from a device to the interrupt controller (edge or level)."""

    def __init__(self, number: int, set_level: Callable[[int, bool], None]) -> None:
        self.number = number
        self._set_level = set_level
        self.level = False

    def raise_(self) -> None:
        self.level = True
        self._set_level(self.number, True)

    def lower(self) -> None:
        self.level = False
        self._set_level(self.number, False)

    def pulse(self) -> None:
        """An edge: what the PIT output and ISA devices in edge mode produce."""
        self.raise_()
        self.lower()


def _nothing(*_a: Any, **_k: Any) -> None:
    return None


@dataclass
class DeviceContext:
    """How a device reaches the rest of the machine. Every field has a harmless
    default so a device can be unit-tested alone."""
    vm_name: str = "vm"
    clock: Callable[[], int] = lambda: 0                         # guest time, ns
    publish: Callable[..., Any] = _nothing                         # publish(kind, **data)
    irq: Callable[[int], IrqLine] = field(default=lambda n: IrqLine(n, _nothing))
    power_off: Callable[[str, int], None] = _nothing               # (reason, exit status)
    reset: Callable[[], None] = _nothing                           # machine reset
    set_a20: Callable[[bool], None] = _nothing
    read_guest: Callable[[int, int], bytes] = lambda addr, n: bytes(n)    # guest-physical
    write_guest: Callable[[int, bytes], None] = _nothing
    memory: Any = None            # the VM's GuestMemory, for devices that do DMA (virtio)


class Device:
    """Base class. Subclasses set ``description`` (one sentence for the GUI and lessons)
    and override ``read``/``write``; timers override ``next_deadline``/``advance``."""

    description = "A device."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        self.name = name
        self.ctx = ctx or DeviceContext()

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        return None

    # Time: devices with timers tell the hypervisor when they next need to run, so a
    # vCPU's slice can end exactly then (deterministic interrupt timing).
    def next_deadline(self) -> int | None:
        return None

    def advance(self, now_ns: int) -> None:
        return None

    def reset(self) -> None:
        return None

    def state(self) -> dict[str, Any]:
        """A snapshot for inspectors and reports."""
        return {}
