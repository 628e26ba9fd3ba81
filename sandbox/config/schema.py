"""The keys a machine config may contain: one table per section, each key with its
type, default, check and a line of help. Later features add rows here, nowhere else."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Key:
    types: tuple[type, ...]
    description: str
    check: Callable[[Any], str | None] | None = None     # returns a complaint, or None
    path: bool = False                                   # resolved relative to the file


def _range(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _name(v: str) -> str | None:
    ok = v and all(c.isalnum() or c in "-_." for c in v)
    return None if ok else "must be letters, digits, '-', '_' or '.'"


HOST_KEYS: dict[str, Key] = {
    "cpus": Key((int,), "Physical CPUs the host has.", _range(1, 64)),
    "memory_mib": Key((int,), "Host RAM in MiB (the frame pool VMs draw from).", _range(1, 4096)),
    "backend": Key((str,), "Engine that runs guest code: unicorn or kvm.", _choice("unicorn", "kvm")),
    "deterministic": Key((bool,), "Guest time from retired instructions (true) or wall clock (false)."),
    "quantum_ms": Key((int, float), "Scheduler time slice in milliseconds of guest time.",
                      lambda v: None if 0.01 <= v <= 1000 else "must be between 0.01 and 1000"),
}

VM_KEYS: dict[str, Key] = {
    "name": Key((str,), "The VM's name (unique on the host).", _name),
    "vcpus": Key((int,), "Virtual CPUs.", _range(1, 16)),
    "memory_mib": Key((int,), "Guest RAM in MiB.", _range(2, 2048)),
    "disk": Key((str,), "Boot disk image (raw or qcow2), relative to this file.", path=True),
    "kernel": Key((str,), "Multiboot kernel (ELF) to boot directly, relative to this file.", path=True),
    "cmdline": Key((str,), "Kernel command line (with kernel)."),
    "readonly": Key((bool,), "Attach the disk read-only."),
    "input": Key((str,), "Text fed to the guest's serial port at power-on (\\n escapes allowed)."),
}
