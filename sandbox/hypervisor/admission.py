"""CPU admission control, as vSphere does it: a VM powers on only if the host can keep
the promise its reservation makes.

A reservation is a percentage of one physical CPU that the VM is guaranteed whenever
it wants it. The host has 100 per physical CPU; the reservations of the VMs that are
powered on may not add up to more. A VM that does not fit is refused at power-on
with a message saying how much is left; the others keep running.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.errors import ConfigError, SandboxError

if TYPE_CHECKING:
    from sandbox.config.model import VmConfig
    from sandbox.hypervisor.policies.base import SchedParams


class AdmissionError(SandboxError):
    """Admission control refused to power on a VM: its CPU reservation does not fit."""


def validate(cfg: "VmConfig", params: "SchedParams") -> None:
    """Settings of one VM that contradict each other (checked when the machine is built)."""
    where = f"VM '{cfg.name}'"
    most = 100 * cfg.vcpus
    if params.reservation > most:
        raise ConfigError(f"{where}: cpu_reservation {params.reservation:g}% is more than its "
                          f"{cfg.vcpus} vCPU(s) can use ({most}%)")
    if params.limit is not None and params.limit < params.reservation:
        raise ConfigError(f"{where}: cpu_limit {params.limit:g}% is below its cpu_reservation "
                          f"{params.reservation:g}%")


def admit(name: str, reservation: float, cpus: int, powered_on: dict[str, float]) -> None:
    """Raise ``AdmissionError`` unless ``reservation`` fits next to ``powered_on``'s."""
    capacity = 100 * cpus
    reserved = sum(powered_on.values())
    if reserved + reservation <= capacity + 1e-9:
        return
    free = max(0.0, capacity - reserved)
    holders = ", ".join(f"{n} {r:g}%" for n, r in powered_on.items() if r) or "none"
    raise AdmissionError(f"admission control refused VM '{name}': it reserves {reservation:g}% of a "
                         f"CPU but only {free:g}% of the host's {capacity}% is unreserved "
                         f"(reserved by: {holders})")
