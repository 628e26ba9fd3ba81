"""A virtual CPU as a state machine (Firecracker's vstate/vcpu.rs pattern).

    CREATED -> RUNNABLE <-> RUNNING -> DONE
                   ^  |
                   |  v
                 HALTED        (HLT with interrupts enabled: blocked until an interrupt)

The engine (a ``VCpuBackend``) runs guest code and returns exit records; what each
exit means for the vCPU is the table ``EXIT_ACTIONS`` in ``sandbox.vm.machine``.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend


class VCpuState(str, enum.Enum):
    CREATED = "created"
    RUNNABLE = "runnable"      # ready: waiting for a physical CPU
    RUNNING = "running"        # on a physical CPU now
    HALTED = "halted"          # blocked in HLT until an interrupt
    DONE = "done"              # powered off or crashed


@dataclass
class VCpuStats:
    run_ns: int = 0            # guest time spent running on a physical CPU
    ready_ns: int = 0          # runnable but waiting for a physical CPU
    halted_ns: int = 0
    instructions: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    interrupts: int = 0


class VCpu:
    def __init__(self, vm_name: str, index: int, backend: "VCpuBackend") -> None:
        self.vm_name = vm_name
        self.index = index
        self.backend = backend
        self.state = VCpuState.CREATED
        self.stats = VCpuStats()

    @property
    def name(self) -> str:
        return f"{self.vm_name}/vcpu{self.index}"

    @property
    def runnable(self) -> bool:
        return self.state in (VCpuState.RUNNABLE, VCpuState.RUNNING)

    def count_exit(self, kind: str) -> None:
        self.stats.exits[kind] = self.stats.exits.get(kind, 0) + 1
