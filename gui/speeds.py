"""Run speeds, and which event kinds are traced at each (tracing costs guest speed).

Frequent kinds (one per I/O exit, per interrupt, per scheduling decision) are only
published when someone subscribes (``EventBus.wants``): the explorer records them in
slow motion, or when the event log asks for them, and not at full speed.
"""
from __future__ import annotations

from dataclasses import dataclass

from sandbox.events import EVENT_KINDS


@dataclass(frozen=True)
class Speed:
    label: str
    runs: bool                  # does guest time advance on its own?
    guest_ns_per_s: int | None  # guest time per wall second (None: as fast as possible)
    pace_s: float               # wall seconds the machine holds after a milestone event
    trace_all: bool             # record every event kind
    description: str


SPEEDS: dict[str, Speed] = {
    "step": Speed("Single step", False, None, 0.0, False,
                  "The machine is paused: each Step executes exactly one instruction of the inspected vCPU."),
    "slow": Speed("Slow motion", True, 20_000_000, 0.9, True,
                  "Guest time runs 50 times slower and the machine holds on every milestone event, for a lecture."),
    "full": Speed("Full speed", True, None, 0.0, False,
                  "The machine runs as fast as this host allows; frequent events are not recorded."),
}

FREQUENT_KINDS = frozenset({
    "exit.io", "exit.mmio", "exit.bios", "exit.hlt", "exit.hypercall", "irq.raise", "irq.deliver",
    "sched.switch", "sched.block", "sched.wake", "serial.tx", "serial.rx", "disk.read", "disk.write",
    "net.frame", "io.unknown_port",
})

# Events worth stopping for in slow motion: the power-on workflow and life-cycle changes.
PACED_PREFIXES = ("power.", "vm.", "cpu.")


def paced(kind: str) -> bool:
    return kind.startswith(PACED_PREFIXES)


def traced_kinds(trace_all: bool) -> frozenset[str]:
    kinds = frozenset(EVENT_KINDS)
    return kinds if trace_all else kinds - FREQUENT_KINDS
