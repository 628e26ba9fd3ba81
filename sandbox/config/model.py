"""Validated machine resources: what the builder turns into a running host and VMs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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


@dataclass
class HostConfig:
    cpus: int = 1
    memory_mib: int | None = None          # None: enough for every VM (no overcommit)
    backend: str = "unicorn"
    deterministic: bool = True
    quantum_ms: float = 1.0                # scheduler time slice


@dataclass
class MachineConfig:
    host: HostConfig
    vms: list[VmConfig] = field(default_factory=list)
    source: str = "<command line>"

    def host_memory_mib(self) -> int:
        if self.host.memory_mib is not None:
            return self.host.memory_mib
        return sum(max(vm.memory_mib, 1) for vm in self.vms) + 1
