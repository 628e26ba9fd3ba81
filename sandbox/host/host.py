"""The physical layer of the seed diagram: the host's CPUs, RAM frames, disks and NICs."""
from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.host.cpu import PhysicalCPU
from sandbox.host.ram import PAGE, FramePool


@dataclass
class PhysicalDisk:
    name: str
    kind: str = "ssd"          # hdd, ssd or nvme: decides the latency model
    path: str = "."            # the host directory the VM disk files live in


@dataclass
class PhysicalNIC:
    name: str
    mac: str = "02:00:00:00:00:01"


@dataclass
class Host:
    cpus: list[PhysicalCPU]
    ram: FramePool
    disks: list[PhysicalDisk] = field(default_factory=list)
    nics: list[PhysicalNIC] = field(default_factory=list)

    @classmethod
    def create(cls, cpus: int = 1, memory_mib: int = 64) -> "Host":
        return cls([PhysicalCPU(i) for i in range(cpus)], FramePool(memory_mib * (1 << 20) // PAGE),
                   [PhysicalDisk("disk0")], [PhysicalNIC("eth0")])

    @property
    def memory_mib(self) -> int:
        return self.ram.frames * PAGE >> 20
