"""Validated machine resources: what the builder turns into a running host and VMs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class NicConfig:
    """A VM's virtio-net card and the switch port it is plugged into (sandbox/net/)."""
    switch: str
    mac: str | None = None                 # None: generated from the VM's name
    vlan: int | None = None                # access port VLAN (default 1)
    trunk: list[int] | None = None         # 802.1Q trunk: these VLANs, tagged
    native_vlan: int | None = None         # a trunk's untagged VLAN
    rate_limit_mbit: float | None = None   # token bucket on what the VM sends
    ip: str | None = None                  # "10.0.0.1/24": ip= on the kernel command line
    gateway: str | None = None             # gw= on the kernel command line


@dataclass
class SwitchConfig:
    name: str
    ports: int = 8
    mirror_to: str | None = None           # a VM whose port gets a copy of every frame (SPAN)
    ageing_s: float = 300                  # MAC table ageing time (the Linux bridge's default)
    latency_us: float = 10                 # guest time from one NIC to another


@dataclass
class VmConfig:
    name: str
    vcpus: int = 1
    memory_mib: int = 16
    disk: Path | None = None
    kernel: Path | None = None
    cmdline: str = ""
    readonly: bool = False
    input: bytes = b""
    mem_reservation_mib: int = 0           # guaranteed, never reclaimed
    mem_limit_mib: int | None = None       # None: no limit below the VM's RAM size
    mem_shares: str | int = "normal"       # low/normal/high = 5/10/20 per MiB, or a number
    balloon: bool = False                  # the guest runs the sandbox balloon driver
    cpu_shares: str | int = "normal"       # low/normal/high = 500/1000/2000 per vCPU, or a number
    cpu_reservation: float = 0             # percent of one physical CPU, guaranteed
    cpu_limit: float | None = None         # percent of one physical CPU, never exceeded
    cpu_weight: int = 256                  # Xen credit scheduler weight
    cpu_cap: float = 0                     # Xen cap, percent of one physical CPU (0: none)
    nic: NicConfig | None = None           # a virtio-net card on a [[switch]]
    disk_bus: str = "ata"                  # "ata" (emulated IDE) or "virtio" (virtio-blk)
    host_disk: str | None = None           # the [host] disk it lives on (None: the first)
    io_shares: str | int = "normal"        # low/normal/high = 500/1000/2000, or a number
    iops_limit: int | None = None          # token bucket: I/Os per second of guest time
    bandwidth_limit_mib: float | None = None   # token bucket: MiB per second of guest time


@dataclass
class HostConfig:
    cpus: int = 1
    memory_mib: int | None = None          # None: enough for every VM (no overcommit)
    backend: str = "unicorn"
    deterministic: bool = True
    quantum_ms: float = 1.0                # scheduler time slice
    page_sharing: bool | str = False       # True, "vm" (only within a VM) or False
    pages_to_scan: int = 100               # sharing scanner: pages per period (KSM's default)
    scan_period_ms: float = 20.0           # sharing scanner: guest time between batches
    swap_file: Path | None = None          # None: an unnamed temporary file
    scheduler: str = "round_robin"         # round_robin, proportional, credit or "module:Class"
    disks: list[dict] = field(default_factory=list)   # [{"name": "hdd0", "kind": "hdd"}]: physical disks


@dataclass
class MachineConfig:
    host: HostConfig
    vms: list[VmConfig] = field(default_factory=list)
    source: str = "<command line>"
    switches: list[SwitchConfig] = field(default_factory=list)

    def host_memory_mib(self) -> int:
        if self.host.memory_mib is not None:
            return self.host.memory_mib
        # Not given: a host that is not overcommitted and keeps some RAM free (as a real
        # host does for itself), so memory reclamation never starts on its own.
        total = sum(max(vm.memory_mib, 1) for vm in self.vms)
        return total + max(16, total // 4)
