"""The host's physical disks, each with its I/O queue, and which VM disk lives on which.

    [host]
    disks = [{ name = "hdd0", kind = "hdd" }, { name = "nvme0", kind = "nvme" }]

    [[vm]]
    disk = "a.qcow2"
    host_disk = "hdd0"            # default: the first disk listed
    io_shares = "high"            # low/normal/high = 500/1000/2000, or a number
    iops_limit = 100              # token bucket, I/Os per second of guest time
    bandwidth_limit_mib = 4       # token bucket, MiB per second of guest time

A host that lists no disks gets one ``ideal`` disk named "host": requests complete
at once (the limits still apply).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sandbox.errors import ConfigError
from sandbox.storage.disk_port import DiskPort, shares_value
from sandbox.storage.io_queue import IoQueue

if TYPE_CHECKING:
    from sandbox.config.model import HostConfig, VmConfig

DEFAULT_DISK = {"name": "host", "kind": "ideal"}


def make_io_queues(host: "HostConfig", vms: list["VmConfig"], publish: Callable[..., Any] | None = None,
                   wants: Callable[[str], bool] | None = None) -> dict[str, IoQueue]:
    disks = list(host.disks) or [DEFAULT_DISK]
    queues = {d["name"]: IoQueue(d["name"], d["kind"], publish, wants) for d in disks}
    for vm in vms:
        if vm.host_disk is not None and vm.host_disk not in queues:
            raise ConfigError(f"VM '{vm.name}': host_disk '{vm.host_disk}' is not one of the [host] disks "
                              f"({', '.join(queues)})")
    return queues


def attach_vm_disk(queues: dict[str, IoQueue], vm: "VmConfig") -> DiskPort:
    queue = queues[vm.host_disk] if vm.host_disk is not None else next(iter(queues.values()))
    return queue.attach(vm.name, shares_value(vm.io_shares), vm.iops_limit, vm.bandwidth_limit_mib)


def disk_report(port: DiskPort | None, bus: str) -> dict[str, Any] | None:
    """The report's per-VM ``disk`` section (None for a VM without a disk)."""
    if port is None:
        return None
    return {"bus": bus, **port.report()}
