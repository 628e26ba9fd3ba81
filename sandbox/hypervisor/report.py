"""The run report (``sandbox run --report``): what happened to each VM and to the host."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.hypervisor.hypervisor import Hypervisor


def build_report(hv: "Hypervisor") -> dict[str, Any]:
    elapsed = max(hv.now_ns, 1)
    vms = []
    for vm in hv.vms.values():
        run = sum(c.stats.run_ns for c in vm.vcpus)
        ready = sum(c.stats.ready_ns for c in vm.vcpus)
        vms.append({
            "name": vm.name,
            "state": vm.state.value,
            "exit_reason": vm.exit_reason,
            "exit_status": vm.exit_status,
            "console": vm.console.decode("latin-1"),
            "exits": dict(sorted(vm.exit_counts.items())),
            "cpu": {
                "vcpus": len(vm.vcpus),
                "run_seconds": run / 1e9,
                "ready_seconds": ready / 1e9,
                "received_fraction": run / elapsed,
                "instructions": sum(c.stats.instructions for c in vm.vcpus),
            },
            "memory": {
                "resident_pages": vm.memory.resident_pages() if vm.memory else 0,
                "cow_faults": hv.memory_manager.cow_faults.get(vm.name, 0),
            },
        })
    return {
        "guest_time_seconds": hv.now_ns / 1e9,
        "deterministic": hv.deterministic,
        "backend": hv.backend_name,
        "host": {
            "cpus": [{"index": c.index, "busy_seconds": c.busy_ns / 1e9} for c in hv.host.cpus],
            "memory": {"frames_total": hv.host.ram.frames, "frames_free": hv.host.ram.free_count},
        },
        "vms": vms,
    }
