"""The CPU part of the run report: where each vCPU's time went, and what was fair.

Two units, side by side, because "fair" is quoted in both:

* ``*_fraction``: a share of the whole host (all pCPUs over the run; the VMs' fractions
  add up to at most 1);
* ``*_percent``: percent of one physical CPU, the unit of reservations, limits and
  caps (esxtop's %USED; an SMP VM can exceed 100).

``ready_seconds`` includes ``limited_seconds`` (as esxtop's %RDY includes %MLMTD);
``costop_seconds`` is separate (%CSTP). ``entitled_*`` is what the policy says the VM
deserved given what every VM asked for (``policies/entitlement.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.hypervisor.hypervisor import Hypervisor
    from sandbox.vm.machine import VirtualMachine


def vm_cpu(hv: "Hypervisor", vm: "VirtualMachine", entitled: dict[str, float]) -> dict[str, Any]:
    sched = hv.scheduler
    elapsed = max(hv.now_ns, 1)
    cpus = len(hv.host.cpus)
    seats = sched.seats.get(vm.name, [])
    run = sum(c.stats.run_ns for c in vm.vcpus)
    ready = sum(s.ready_ns + s.limited_ns for s in seats)
    limited = sum(s.limited_ns for s in seats)
    costop = sum(s.costop_ns for s in seats)
    share = entitled.get(vm.name)
    return {
        "vcpus": len(vm.vcpus),
        "run_seconds": run / 1e9,
        "ready_seconds": ready / 1e9,
        "limited_seconds": limited / 1e9,
        "costop_seconds": costop / 1e9,
        "received_fraction": run / (elapsed * cpus),
        "entitled_fraction": None if share is None else share / (100 * cpus),
        "received_percent": 100 * run / elapsed,
        "entitled_percent": share,
        "instructions": sum(c.stats.instructions for c in vm.vcpus),
        "per_vcpu": [{"index": s.vcpu.index, "state": s.phase, "run_seconds": s.vcpu.stats.run_ns / 1e9,
                      "ready_seconds": (s.ready_ns + s.limited_ns) / 1e9,
                      "limited_seconds": s.limited_ns / 1e9, "costop_seconds": s.costop_ns / 1e9,
                      "instructions": s.vcpu.stats.instructions} for s in seats],
    }


def host_cpus(hv: "Hypervisor") -> list[dict[str, Any]]:
    elapsed = max(hv.now_ns, 1)
    return [{"index": c.index, "busy_seconds": c.busy_ns / 1e9,
             "idle_seconds": max(0, elapsed - c.busy_ns) / 1e9,
             "utilization": min(1.0, c.busy_ns / elapsed)} for c in hv.host.cpus]


def cpu_report(hv: "Hypervisor") -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """(per-VM "cpu" sections, host.cpus, host.scheduler)."""
    hv.scheduler.settle(hv.now_ns)
    entitled = hv.scheduler.entitlements()
    return ({vm.name: vm_cpu(hv, vm, entitled) for vm in hv.vms.values()}, host_cpus(hv),
            hv.scheduler.describe())
