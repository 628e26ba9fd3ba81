"""vCPU exits as data.

A backend (Unicorn or KVM) translates its native exit into one of these records and
nothing else; ``sandbox.hypervisor.dispatcher`` decides what happens next. I/O and
MMIO exits are served synchronously (the guest instruction waits for the value);
the others end a ``run()`` call and go back to the vCPU's run loop.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class IoExit:
    """IN/OUT. For a read, the dispatcher fills ``value``."""
    port: int
    size: int          # 1, 2 or 4 bytes
    write: bool
    value: int = 0
    kind: str = "io"


@dataclass(slots=True)
class MmioExit:
    """A load/store to device memory (guest-physical ``addr``)."""
    addr: int
    size: int
    write: bool
    value: int = 0
    kind: str = "mmio"


@dataclass(slots=True)
class HltExit:
    """HLT: ``interrupts_enabled`` False means halted for good (``cli; hlt``)."""
    interrupts_enabled: bool
    kind: str = "hlt"


@dataclass(slots=True)
class BudgetExit:
    """The time slice given to ``run()`` is used up."""
    kind: str = "budget"


@dataclass(slots=True)
class StopExit:
    """``run()`` ended early because the hypervisor asked (an interrupt became
    pending, a device powered the machine off, the user paused, ...)."""
    kind: str = "stop"


@dataclass(slots=True)
class ShutdownExit:
    """The guest powered the machine off (ACPI, isa-debug-exit, cli;hlt)."""
    reason: str
    status: int = 0
    kind: str = "shutdown"


@dataclass(slots=True)
class CrashExit:
    """The VM cannot continue: triple fault, unserviceable access, emulation error."""
    reason: str
    kind: str = "crash"


@dataclass(slots=True)
class StepExit:
    """Single-step or breakpoint: the vCPU stopped at ``address`` for the debugger."""
    address: int
    why: str = "step"
    kind: str = "step"


Exit = IoExit | MmioExit | HltExit | BudgetExit | StopExit | ShutdownExit | CrashExit | StepExit
