"""The run report (``sandbox run --report``): what happened to each VM and to the host."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.hypervisor.mem_report import host_memory, vm_memory
from sandbox.hypervisor.sched_report import cpu_report
from sandbox.net.net_report import switches, vm_net
from sandbox.storage.host_disks import disk_report

if TYPE_CHECKING:
    from sandbox.hypervisor.hypervisor import Hypervisor


def build_report(hv: "Hypervisor") -> dict[str, Any]:
    cpu, host_cpus, scheduler = cpu_report(hv)
    vms = []
    for vm in hv.vms.values():
        vms.append({
            "name": vm.name,
            "state": vm.state.value,
            "exit_reason": vm.exit_reason,
            "exit_status": vm.exit_status,
            "console": vm.console.decode("latin-1"),
            "exits": dict(sorted(vm.exit_counts.items())),
            "cpu": cpu[vm.name],
            "memory": vm_memory(hv.memory_manager, vm.name),
            "net": vm_net(hv, vm),
            "disk": disk_report(vm.disk_port, vm.config.disk_bus),
        })
    return {
        "guest_time_seconds": hv.now_ns / 1e9,
        "deterministic": hv.deterministic,
        "backend": hv.backend_name,
        "host": {
            "cpus": host_cpus,
            "scheduler": scheduler,
            "memory": host_memory(hv.memory_manager),
        },
        "vms": vms,
        "switches": switches(hv),
    }
