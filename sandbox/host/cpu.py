"""A physical CPU of the host: what the scheduler hands vCPUs to."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PhysicalCPU:
    index: int
    busy_ns: int = 0                   # guest-time nanoseconds spent running vCPUs
    current: str | None = None         # "vm/vcpuN" running now, or None (idle)
    history: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, vcpu)

    @property
    def name(self) -> str:
        return f"pcpu{self.index}"
