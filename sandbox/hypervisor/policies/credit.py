"""Xen's credit scheduler (credit1), simplified to one global run queue.

* Every VM has a **weight** (256 by default) and an optional **cap** (percent of one
  pCPU; 0 = none). Every accounting period (30 ms) the host's CPU time for the period
  is handed out as *credits* to the VMs that are active, in proportion to their
  weights, and split among each VM's active vCPUs. Running burns credit.
* A vCPU with credit left is **UNDER**, one in debt is **OVER**; UNDER
  vCPUs run first, OVER ones only get what is left (work-conserving, unless capped).
* A vCPU keeps its pCPU for a **30 ms time slice** unless one of higher priority is
  waiting (checked at every scheduler tick).
* **BOOST**: a vCPU that wakes up (an interrupt after ``hlt``) while UNDER is boosted
  above everyone else until it has run one tick. I/O-bound and interactive VMs get low
  latency without getting more than their share.
* **Cap**: a capped VM never gets more credit per period than its cap, and its vCPUs
  are *parked* (not runnable: "limit") while their credit is negative, even on an
  idle host.

Differences from ESXi's proportional share: weights are per VM, not per vCPU (a 4-vCPU
VM with weight 256 gets the same as a 1-vCPU VM with weight 256); no reservations; no
co-scheduling of SMP vCPUs.
"""
from __future__ import annotations

from typing import Any

from sandbox.hypervisor.policies.base import SchedulingPolicy, VCpuInfo
from sandbox.hypervisor.policies.entitlement import VmDemand, water_fill

PERIOD_NS = 30_000_000       # credit accounting period (Xen: every 3 ticks of 10 ms)
SLICE_NS = 30_000_000        # time slice (Xen's default tslice_ms = 30)
BOOST, UNDER, OVER = 2, 1, 0
PRIORITY_NAMES = {BOOST: "BOOST", UNDER: "UNDER", OVER: "OVER"}


class Credit(SchedulingPolicy):
    name = "credit"
    description = ("Xen's credit scheduler: credits by weight every 30 ms, UNDER before OVER, "
                   "30 ms slices, BOOST for vCPUs that wake up, optional cap.")
    honours = ("cpu_weight", "cpu_cap")

    def __init__(self) -> None:
        self.credit: dict[str, int] = {}
        self.boosted: set[str] = set()
        self.slice_used: dict[str, int] = {}
        self.queued_at: dict[str, int] = {}        # FIFO order within a priority
        self.current: dict[int, str] = {}          # pCPU -> the vCPU whose slice it is serving
        self.known: dict[str, VCpuInfo] = {}
        self.ran_this_period: set[str] = set()     # VMs
        self.next_accounting: int | None = None
        self.cpus = 1

    def setup(self, host) -> None:
        super().setup(host)
        self.cpus = host.cpus

    def _priority(self, c: VCpuInfo) -> int:
        if c.name in self.boosted:
            return BOOST
        return OVER if self.credit.get(c.name, 0) < 0 else UNDER

    def _see(self, c: VCpuInfo) -> None:
        if c.name not in self.known:
            self.known[c.name] = c
            self.credit[c.name] = 0
            self.queued_at[c.name] = -1

    # --- credit accounting -------------------------------------------------------------------
    def _accounting(self, now_ns: int) -> None:
        if self.next_accounting is None:
            self.next_accounting = now_ns
        if now_ns < self.next_accounting:
            return
        while self.next_accounting <= now_ns:
            self.next_accounting += PERIOD_NS
        vms: dict[str, list[VCpuInfo]] = {}
        for c in self.known.values():
            if c.state in ("ready", "running") or c.vm in self.ran_this_period:
                vms.setdefault(c.vm, []).append(c)
        self.ran_this_period.clear()
        total_weight = sum(cs[0].params.weight for cs in vms.values())
        for vm, vcpus in sorted(vms.items()):
            params = vcpus[0].params
            share = self.cpus * PERIOD_NS * params.weight / max(total_weight, 1)
            if params.cap:
                share = min(share, params.cap / 100 * PERIOD_NS)
            for c in vcpus:
                self.credit[c.name] = max(-PERIOD_NS, min(PERIOD_NS, self.credit[c.name] + int(share / len(vcpus))))

    # --- the interface -------------------------------------------------------------------------
    def pick(self, pcpu: int, runnable: list[VCpuInfo], now_ns: int) -> VCpuInfo | None:
        for c in runnable:
            self._see(c)
        self._accounting(now_ns)
        best = max(self._priority(c) for c in runnable)
        mine = self.current.get(pcpu)
        for c in runnable:
            if c.name == mine and self.slice_used.get(mine, 0) < SLICE_NS and self._priority(c) >= best:
                return c                                  # the rest of its time slice
        if mine is not None:
            self.queued_at[mine] = now_ns                 # slice over or preempted: to the tail
        others = set(self.current.values()) - {mine}
        free = [c for c in runnable if c.name not in others] or runnable
        choice = min(free, key=lambda c: (-self._priority(c), self.queued_at[c.name], c.name))
        for cpu, name in list(self.current.items()):
            if name == choice.name:
                del self.current[cpu]
        self.current[pcpu] = choice.name
        self.slice_used[choice.name] = 0
        return choice

    def account(self, vcpu: VCpuInfo, ran_ns: int, now_ns: int) -> None:
        self._see(vcpu)
        self.credit[vcpu.name] -= ran_ns
        self.slice_used[vcpu.name] = self.slice_used.get(vcpu.name, 0) + ran_ns
        self.boosted.discard(vcpu.name)               # BOOST lasts until it has run a tick
        self.ran_this_period.add(vcpu.vm)

    def block(self, vcpu: VCpuInfo, now_ns: int) -> None:
        self._see(vcpu)
        self.boosted.discard(vcpu.name)
        for cpu, name in list(self.current.items()):
            if name == vcpu.name:
                del self.current[cpu]

    def wake(self, vcpu: VCpuInfo, now_ns: int) -> None:
        self._see(vcpu)
        if self.credit[vcpu.name] >= 0:
            self.boosted.add(vcpu.name)
        self.queued_at[vcpu.name] = now_ns

    def throttled(self, vcpu: VCpuInfo, now_ns: int) -> str | None:
        if not vcpu.params.cap:
            return None                                   # only a cap parks a vCPU
        self._see(vcpu)
        if self.next_accounting is not None:        # (the first accounting waits for the first pick)
            self._accounting(now_ns)
        if vcpu.params.cap and self.credit[vcpu.name] < 0:
            return "limit"                                # parked until the next accounting
        return None

    def describe(self, vcpu: VCpuInfo) -> dict[str, Any]:
        return {"credit_ns": self.credit.get(vcpu.name, 0),
                "priority": PRIORITY_NAMES[self._priority(vcpu)],
                "slice_used_ns": self.slice_used.get(vcpu.name, 0)}

    def entitlement(self, vms: list[VmDemand], capacity: float) -> dict[str, float]:
        table = {}
        for v in vms:
            p = v.params
            table[v.name] = (float(p.weight), 0.0, min(p.cap, v.demand) if p.cap else v.demand)
        return water_fill(capacity, table)
