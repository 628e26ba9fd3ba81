"""Scheduling policies: the table of built-in ones, and plug-ins by "module:Class".

``[host] scheduler = NAME`` picks one; the interface is in ``base.py``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sandbox.errors import ConfigError
from sandbox.hypervisor.policies.base import (HostInfo, SchedParams, SchedulingPolicy,
                                              VCpuInfo)
from sandbox.hypervisor.policies.credit import Credit
from sandbox.hypervisor.policies.guard import GuardedPolicy, PolicyFailure
from sandbox.hypervisor.policies.plugin import load_plugin
from sandbox.hypervisor.policies.proportional import ProportionalShare
from sandbox.hypervisor.policies.round_robin import RoundRobin

# name -> class; each class carries its one-line ``description``.
POLICIES: dict[str, Callable[[], SchedulingPolicy]] = {
    RoundRobin.name: RoundRobin,
    ProportionalShare.name: ProportionalShare,
    Credit.name: Credit,
}
DEFAULT = RoundRobin.name
FALLBACK = RoundRobin.name


def make_policy(spec: str | None, config_file: str | Path | None = None) -> GuardedPolicy:
    """The policy ``spec`` names (a built-in name or "module:Class"), inside its guard.
    A plug-in module is looked for next to ``config_file`` first."""
    spec = spec or DEFAULT
    if spec in POLICIES:
        return GuardedPolicy(POLICIES[spec](), spec)
    if ":" in spec:
        path = Path(config_file) if config_file is not None else None
        base_dir = path.parent if path is not None and path.is_file() else None
        return GuardedPolicy(load_plugin(spec, base_dir), spec)
    raise ConfigError(f"scheduler '{spec}': unknown policy (choose {', '.join(POLICIES)}, "
                      f"or 'module:Class' for your own)")


__all__ = ["POLICIES", "DEFAULT", "FALLBACK", "make_policy", "GuardedPolicy", "PolicyFailure",
           "SchedulingPolicy", "VCpuInfo", "HostInfo", "SchedParams", "RoundRobin",
           "ProportionalShare", "Credit"]
