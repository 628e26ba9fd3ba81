"""The network parts of the run report: each VM's NIC and each switch."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.hypervisor.hypervisor import Hypervisor
    from sandbox.vm.machine import VirtualMachine


def vm_net(hv: "Hypervisor", vm: "VirtualMachine") -> dict[str, Any] | None:
    """tx/rx frames and bytes as the guest's NIC saw them; drops both at the NIC (no
    receive buffer, ...) and at its switch port (rate limit, bad VLAN tag, runt, ...)."""
    nic = vm.devices.get("virtio-net")
    if nic is None:
        return None
    counters = nic.counters()
    reasons = dict(counters.pop("drop_reasons"))
    port = hv.network.ports.get(vm.name)
    if port is not None:
        for reason, n in port.drops.items():
            reasons[reason] = reasons.get(reason, 0) + n
    return {"mac": nic.state()["mac"], "switch": vm.config.nic.switch if vm.config.nic else None,
            "port": port.number if port else None, "vlan": port.vlan.describe() if port else None,
            **counters, "drops": sum(reasons.values()), "drop_reasons": dict(sorted(reasons.items())),
            "rate_limit": port.limiter.state() if port and port.limiter else None}


def switches(hv: "Hypervisor") -> list[dict[str, Any]]:
    return hv.network.state(hv.now_ns)
