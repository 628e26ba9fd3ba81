"""Proportional share with reservations and limits, as VMware ESXi defines them.

* **Shares**: under contention a VM receives CPU in proportion to its shares (low,
  normal, high = 500, 1000, 2000 per vCPU). Each vCPU has a *virtual time* that
  advances by ``ran / shares``; the vCPU furthest behind runs next (stride scheduling).
* **Reservation** (percent of one pCPU): guaranteed whenever the VM wants it. A token
  bucket fills at the reservation rate; a VM with tokens left goes before anyone
  chosen by shares. Admission control (``admission.py``) refused any VM whose
  reservation the host could not honour, so this always succeeds.
* **Limit** (percent of one pCPU): never exceeded, even on an idle host. A second
  bucket fills at the limit rate; a vCPU runs only for as long as the bucket holds
  (``slice_ns``), so the VM's CPU time since power-on never passes ``limit x time``.
  Waiting for the bucket is *limited* time (esxtop's %MLMTD, part of %RDY).
* **Co-stop** (SMP VMs): relaxed co-scheduling. A vCPU that has made more than
  ``COSTOP_SKEW_NS`` more progress than a runnable sibling is held back until the
  sibling catches up (esxtop's %CSTP), so the guest's vCPUs stay roughly in step.

A woken vCPU's virtual time is moved up to half a tick's worth below the current
minimum: sleeping does not bank a claim on the future, but a vCPU that just woke
(an interactive VM) goes before the CPU hogs (Linux's CFS gives the same sleeper
credit).
"""
from __future__ import annotations

from typing import Any

from sandbox.hypervisor.policies.base import SchedulingPolicy, VCpuInfo
from sandbox.hypervisor.policies.entitlement import VmDemand, water_fill

COSTOP_SKEW_NS = 3_000_000      # ESX's classic skew threshold: 3 ms
MIN_RUN_NS = 10_000             # a limited VM waits until it may run at least this long


class ProportionalShare(SchedulingPolicy):
    name = "proportional"
    description = ("ESXi-style proportional share: CPU in proportion to shares, reservations "
                   "guaranteed, limits never exceeded, SMP vCPUs kept in step (co-stop).")
    honours = ("cpu_shares", "cpu_reservation", "cpu_limit")

    def __init__(self) -> None:
        self.vtime: dict[str, float] = {}         # vCPU -> virtual time (ns per share x 1000)
        self.floor = 0.0                          # the smallest virtual time at the last pick
        self.reserve: dict[str, float] = {}       # VM -> reservation tokens (ns of CPU owed)
        self.allow: dict[str, float] = {}         # VM -> limit tokens (ns of CPU it may still use)
        self.filled_at: dict[str, int] = {}       # VM -> when its buckets were last filled
        self.quantum = 1_000_000

    def setup(self, host) -> None:
        super().setup(host)
        self.quantum = host.quantum_ns

    # --- the token buckets -------------------------------------------------------------------
    def _fill(self, vcpu: VCpuInfo, now_ns: int) -> None:
        vm, p = vcpu.vm, vcpu.params
        burst = self.quantum * vcpu.vcpus
        if vm not in self.filled_at:
            self.filled_at[vm] = now_ns
            self.reserve[vm] = 0.0
            self.allow[vm] = 0.0
            return
        dt = now_ns - self.filled_at[vm]
        if dt <= 0:
            return
        self.filled_at[vm] = now_ns
        self.reserve[vm] = min(burst, self.reserve[vm] + p.reservation / 100 * dt)
        if p.limit is not None:
            self.allow[vm] = min(burst, self.allow[vm] + p.limit / 100 * dt)

    def _vtime(self, vcpu: VCpuInfo) -> float:
        return self.vtime.setdefault(vcpu.name, self.floor)

    # --- the interface -------------------------------------------------------------------------
    def pick(self, pcpu: int, runnable: list[VCpuInfo], now_ns: int) -> VCpuInfo | None:
        owed = []
        for c in runnable:
            if c.params.reservation > 0:
                self._fill(c, now_ns)
                if self.reserve[c.vm] > 0:
                    owed.append(c)
        vtime = {c.name: self._vtime(c) for c in runnable}
        self.floor = max(self.floor, min(vtime.values()))
        if owed:        # reservations first: the VM that is owed most
            return min(owed, key=lambda c: (-self.reserve[c.vm], vtime[c.name], c.name))
        # then shares: the vCPU furthest behind in virtual time
        return min(runnable, key=lambda c: (vtime[c.name], c.name))

    def slice_ns(self, vcpu: VCpuInfo, now_ns: int) -> int | None:
        if vcpu.params.limit is None:
            return None
        self._fill(vcpu, now_ns)
        return max(1, int(self.allow[vcpu.vm]))      # no longer than the limit bucket holds

    def account(self, vcpu: VCpuInfo, ran_ns: int, now_ns: int) -> None:
        per_vcpu_shares = max(vcpu.params.shares / vcpu.vcpus, 1e-9)
        self.vtime[vcpu.name] = self._vtime(vcpu) + ran_ns * 1000 / per_vcpu_shares
        if vcpu.vm in self.reserve:
            self.reserve[vcpu.vm] = max(-self.quantum * vcpu.vcpus, self.reserve[vcpu.vm] - ran_ns)
        if vcpu.params.limit is not None and vcpu.vm in self.allow:
            self.allow[vcpu.vm] -= ran_ns

    def wake(self, vcpu: VCpuInfo, now_ns: int) -> None:
        credit = self.quantum / 2 * 1000 / max(vcpu.params.shares / vcpu.vcpus, 1e-9)
        self.vtime[vcpu.name] = max(self._vtime(vcpu), self.floor - credit)

    def throttled(self, vcpu: VCpuInfo, now_ns: int) -> str | None:
        if vcpu.params.limit is None and vcpu.vcpus == 1:
            return None
        self._fill(vcpu, now_ns)
        if vcpu.params.limit is not None and self.allow[vcpu.vm] < MIN_RUN_NS:
            return "limit"
        if vcpu.vcpus > 1:
            mine = vcpu.ready_ns + vcpu.costop_ns
            behind = [s.ready_ns + s.costop_ns for s in vcpu.siblings if s.state in ("ready", "running")]
            if behind and max(behind) - mine > COSTOP_SKEW_NS:
                return "costop"
        return None

    def describe(self, vcpu: VCpuInfo) -> dict[str, Any]:
        out: dict[str, Any] = {"vtime": round(self._vtime(vcpu), 1)}
        if vcpu.params.reservation:
            out["reservation_tokens_ns"] = round(self.reserve.get(vcpu.vm, 0.0))
        if vcpu.params.limit is not None:
            out["limit_tokens_ns"] = round(self.allow.get(vcpu.vm, 0.0))
        return out

    def entitlement(self, vms: list[VmDemand], capacity: float) -> dict[str, float]:
        table = {}
        for v in vms:
            p = v.params
            high = v.demand if p.limit is None else min(p.limit, v.demand)
            table[v.name] = (float(p.shares), min(p.reservation, v.demand), high)
        return water_fill(capacity, table)
