"""Scheduling policies: the small interface a policy implements, and round robin.

A policy only decides; the scheduler does the mechanism. ``pick`` chooses one of the
runnable vCPUs for a physical CPU (or None to leave it idle); ``account`` learns how
long the chosen vCPU ran.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.vm.vcpu import VCpu


class SchedulingPolicy:
    name = "abstract"
    description = ""

    def pick(self, pcpu: int, runnable: list["VCpu"], now_ns: int) -> "VCpu | None":
        raise NotImplementedError

    def account(self, vcpu: "VCpu", ran_ns: int, now_ns: int) -> None:
        return None


class RoundRobin(SchedulingPolicy):
    name = "round_robin"
    description = "Every runnable vCPU gets the next quantum in turn: equal time, no priorities."

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._tick = 0

    def pick(self, pcpu: int, runnable: list["VCpu"], now_ns: int) -> "VCpu | None":
        # The vCPU that has waited longest since it last ran goes next.
        choice = min(runnable, key=lambda c: (self._last.get(c.name, -1), c.name))
        self._tick += 1
        self._last[choice.name] = self._tick
        return choice
