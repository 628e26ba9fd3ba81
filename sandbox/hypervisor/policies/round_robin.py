"""Round robin: every runnable vCPU gets the next tick in turn.

"Fair" here means equal time per *vCPU*: a VM with four vCPUs gets four times what a
one-vCPU VM gets. No shares, no reservations, no limits. It is also the fallback the
scheduler switches to when another policy fails.
"""
from __future__ import annotations

from sandbox.hypervisor.policies.base import SchedulingPolicy, VCpuInfo


class RoundRobin(SchedulingPolicy):
    name = "round_robin"
    description = "Every runnable vCPU gets the next tick in turn: equal time per vCPU, no priorities."

    def __init__(self) -> None:
        self._last_pick: dict[str, int] = {}     # vCPU -> decision number when it was last picked
        self._decisions = 0

    def pick(self, pcpu: int, runnable: list[VCpuInfo], now_ns: int) -> VCpuInfo | None:
        # The vCPU that has waited longest since it was last picked goes next.
        choice = min(runnable, key=lambda c: (self._last_pick.get(c.name, -1), c.name))
        self._decisions += 1
        self._last_pick[choice.name] = self._decisions
        return choice

    def describe(self, vcpu: VCpuInfo) -> dict[str, int]:
        return {"last_picked": self._last_pick.get(vcpu.name, -1)}
