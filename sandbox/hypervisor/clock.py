"""Guest time.

Deterministic mode (the default): time is driven by retired guest instructions. A
vCPU executes ``INSTRUCTIONS_PER_US`` instructions per microsecond of guest time,
whatever the host's speed, so timer interrupts land on the same instruction in
every run and the event trace is identical on every machine.

Fast mode: guest time is wall-clock time; throughput is higher, runs differ.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend

NS_PER_INSTRUCTION = 10          # a 100 MIPS virtual CPU
INSTRUCTIONS_PER_US = 1000 // NS_PER_INSTRUCTION


class VmClock:
    """One VM's view of guest time: the host's time at the start of the current slice
    plus what the running vCPU has executed since."""

    def __init__(self, deterministic: bool) -> None:
        self.deterministic = deterministic
        self.base_ns = 0
        self._running: "VCpuBackend | None" = None
        self._base_insns = 0
        self._base_wall = 0

    def now(self) -> int:
        cpu = self._running
        if cpu is None:
            return self.base_ns
        if self.deterministic:
            return self.base_ns + (cpu.instructions() - self._base_insns) * NS_PER_INSTRUCTION
        return self.base_ns + (time.perf_counter_ns() - self._base_wall)

    def start(self, cpu: "VCpuBackend", at_ns: int) -> None:
        self.base_ns = max(self.base_ns, at_ns)
        self._running = cpu
        self._base_insns = cpu.instructions()
        self._base_wall = time.perf_counter_ns()

    def stop(self) -> int:
        """End the slice; returns the guest time now."""
        self.base_ns = self.now()
        self._running = None
        return self.base_ns

    def set(self, at_ns: int) -> None:
        """Idle time passes (no vCPU of this VM running)."""
        if self._running is None:
            self.base_ns = max(self.base_ns, at_ns)
