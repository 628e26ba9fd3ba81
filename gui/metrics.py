"""The numbers the plots show, as tables: add a row to plot a new counter.

``MEMORY_FIELDS`` are read in the worker thread (into each ``VmView.memory``) from the
run report (``Machine.report()``, copied four times a second); when the report lacks a
key, from a computation on the frame tables if there is one, else 0.
``PLOTS`` turn two successive snapshots into the values of each curve; ``History``
keeps the last samples for the plot view.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from gui.snapshot import Snapshot

if TYPE_CHECKING:
    from sandbox.api import Machine
    from sandbox.vm.machine import VirtualMachine

PAGE_BYTES = 4096


def _shared_pages(machine: "Machine", vm: "VirtualMachine") -> int:
    mem = vm.memory
    if mem is None:
        return 0
    refcount = machine.hypervisor.host.ram.refcount
    return sum(1 for h in mem.table if h >= 0 and refcount[h] > 1)


def _resident_pages(machine: "Machine", vm: "VirtualMachine") -> int:
    return vm.memory.resident_pages() if vm.memory is not None else 0


@dataclass(frozen=True)
class MemoryField:
    name: str
    report_key: str                       # key in the run report's per-VM "memory" table
    compute: Callable[["Machine", "VirtualMachine"], int] | None   # when the report lacks the key
    description: str

    def read(self, machine: "Machine", vm: "VirtualMachine", report_vm: dict[str, Any]) -> int:
        value = report_vm.get("memory", {}).get(self.report_key)
        if isinstance(value, (int, float)):
            return int(value)
        return self.compute(machine, vm) if self.compute is not None else 0


MEMORY_FIELDS: tuple[MemoryField, ...] = (
    MemoryField("resident", "resident_pages", _resident_pages, "Guest pages backed by a host RAM frame."),
    MemoryField("shared", "shared_pages", _shared_pages, "Guest pages on a frame shared with others (copy-on-write)."),
    MemoryField("swapped", "swapped_pages", None, "Guest pages the hypervisor wrote to the host swap file."),
    MemoryField("ballooned", "ballooned_pages", None, "Guest pages the balloon driver handed back to the hypervisor."),
)

Series = dict[tuple[str, str], float]     # (group: VM or exit kind, variant) -> value


def _cpu(prev: Snapshot, cur: Snapshot, dt_ns: int) -> Series:
    out: Series = {}
    for vm in cur.vms:
        before = prev.vm(vm.name)
        if before is None or not vm.vcpus:
            continue
        ran = sum(c.run_ns for c in vm.vcpus) - sum(c.run_ns for c in before.vcpus)
        out[(vm.name, "received")] = ran / dt_ns
        out[(vm.name, "entitled")] = vm.entitled
    return out


def _ready(prev: Snapshot, cur: Snapshot, dt_ns: int) -> Series:
    out: Series = {}
    for vm in cur.vms:
        before = prev.vm(vm.name)
        if before is None or not vm.vcpus or vm.report_ns <= before.report_ns:
            continue                    # measured over the interval between two run reports
        ready = vm.ready_ns - before.ready_ns
        out[(vm.name, "ready")] = 100.0 * ready / (vm.report_ns - before.report_ns) / len(vm.vcpus)
    return out


def _memory(prev: Snapshot, cur: Snapshot, dt_ns: int) -> Series:
    return {(vm.name, f.name): vm.memory.get(f.name, 0) * PAGE_BYTES
            for vm in cur.vms if vm.vcpus for f in MEMORY_FIELDS}


def _exits(prev: Snapshot, cur: Snapshot, dt_ns: int) -> Series:
    totals: dict[str, float] = {}
    for vm in cur.vms:
        before = prev.vm(vm.name)
        old = before.exits if before is not None else {}
        for kind, n in vm.exits.items():
            totals[kind] = totals.get(kind, 0.0) + (n - old.get(kind, 0))
    return {(kind, "rate"): n * 1e9 / dt_ns for kind, n in totals.items()}


@dataclass(frozen=True)
class PlotSpec:
    key: str
    title: str
    y_label: str
    series: Callable[[Snapshot, Snapshot, int], Series]
    description: str
    units: str = ""                 # SI units for the axis (pyqtgraph adds k, M, ...)
    legend: bool = False            # a legend of its own (series that are not VMs)


PLOTS: tuple[PlotSpec, ...] = (
    PlotSpec("cpu", "CPU received vs. entitled", "physical CPUs", _cpu,
             "Solid: CPU each VM got; dashed: its fair share."),
    PlotSpec("ready", "Ready time", "% of time", _ready,
             "Runnable, but waiting for a physical CPU (esxtop %RDY)."),
    PlotSpec("memory", "Memory per VM", "memory", _memory,
             "Solid: resident; dashed: shared; dotted: swapped; dash-dot: ballooned.", "B"),
    PlotSpec("exits", "Exits per second, by kind", "exits / guest second", _exits,
             "How often guests trapped into the hypervisor, for each reason.", legend=True),
)

# Line style of each series variant (Qt pen styles by name, used by the plot view).
VARIANT_STYLES = {"received": "solid", "entitled": "dash", "ready": "solid", "resident": "solid",
                  "shared": "dash", "swapped": "dot", "ballooned": "dashdot", "rate": "solid"}


class History:
    """The last ``length`` samples of every plot, taken at most every ``period_s`` of
    wall time and only when guest time moved."""

    def __init__(self, length: int = 600, period_s: float = 0.5, plots: tuple[PlotSpec, ...] = PLOTS) -> None:
        self.length = length
        self.period_s = period_s
        self.plots = plots
        self.times: deque[float] = deque(maxlen=length)
        self.values: dict[str, dict[tuple[str, str], deque[float]]] = {p.key: {} for p in plots}
        self.peaks: dict[str, dict[tuple[str, str], float]] = {p.key: {} for p in plots}   # largest value seen
        self._prev: Snapshot | None = None
        self.samples = 0

    def offer(self, snap: Snapshot) -> bool:
        """Take a sample from ``snap`` if it is time to; True when one was added."""
        prev = self._prev
        if prev is None:
            self._prev = snap
            return False
        dt = snap.now_ns - prev.now_ns
        if dt <= 0 or snap.wall - prev.wall < self.period_s:
            return False
        self.times.append(snap.now_ns / 1e9)
        for plot in self.plots:
            table, peaks = self.values[plot.key], self.peaks[plot.key]
            new = plot.series(prev, snap, dt)
            for key in new.keys() - table.keys():
                table[key] = deque([math.nan] * (len(self.times) - 1), maxlen=self.length)
            for key, column in table.items():
                value = new.get(key, math.nan)
                column.append(value)
                if value > peaks.get(key, 0.0):
                    peaks[key] = value
        self._prev = snap
        self.samples += 1
        return True
