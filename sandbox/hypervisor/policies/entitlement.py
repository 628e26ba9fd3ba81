"""Entitlement: what each VM deserves, by water-filling.

Every policy's idea of "fair" fits one formula: give VM i the amount
``clamp(level * weight_i, low_i, high_i)``, raising the common ``level`` until the
host's capacity is used up (or every VM has all it can use). Only the weights and the
bounds differ: round robin weighs every vCPU the same; ESXi's proportional share uses
shares, with the reservation as ``low`` and the limit as part of ``high``; Xen's
credit scheduler uses per-VM weights with the cap in ``high``. ``high`` also includes
the VM's *demand* (what it asked for: its run + ready + co-stop time), because CPU a
VM does not want goes to the others.

Units: percent of one physical CPU (a 2-pCPU host has capacity 200).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VmDemand:
    name: str
    vcpus: int
    params: object        # SchedParams
    demand: float         # percent of one pCPU the VM wanted (at most 100 per vCPU)


def water_fill(capacity: float, vms: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    """``vms`` maps a name to (weight, low, high). Returns each VM's share."""
    bounds = {n: (w, min(lo, hi), hi) for n, (w, lo, hi) in vms.items()}
    if sum(hi for _w, _lo, hi in bounds.values()) <= capacity:
        return {n: hi for n, (_w, _lo, hi) in bounds.items()}

    def total(level: float) -> float:
        return sum(min(max(level * w, lo), hi) for w, lo, hi in bounds.values())

    low, high = 0.0, 1.0
    while total(high) < capacity and high < 1e12:
        high *= 2
    for _ in range(100):                       # bisection: exact enough, deterministic
        mid = (low + high) / 2
        if total(mid) < capacity:
            low = mid
        else:
            high = mid
    return {n: min(max(high * w, lo), hi) for n, (w, lo, hi) in bounds.items()}
