"""The scheduling-policy interface: the small thing a student implements in a lab.

The scheduler (``sandbox/hypervisor/scheduler.py``) is the *mechanism*: it keeps
time, runs vCPUs on physical CPUs (pCPUs), notices when a vCPU halts or wakes, and
does all the accounting (run, ready, co-stop time). A *policy* only decides. At each
scheduler tick (``quantum_ms``, 1 ms by default) and whenever a pCPU falls idle, it
is asked which vCPU that pCPU should run next::

    class MyPolicy(SchedulingPolicy):
        def pick(self, pcpu, runnable, now_ns):      # required
            return runnable[0]                      # one of `runnable`, or None: stay idle
        def account(self, vcpu, ran_ns, now_ns):    # optional: it just ran ran_ns
            ...
        def block(self, vcpu, now_ns):              # optional: it halted (or its VM stopped)
            ...
        def wake(self, vcpu, now_ns):               # optional: runnable again
            ...

Optional extras: ``setup(host)`` once before the first decision; ``throttled(vcpu,
now_ns)`` says why a runnable vCPU must *not* run now ("limit" or "costop"; the
scheduler then accounts its waiting separately and never offers it to ``pick``);
``slice_ns(vcpu, now_ns)`` caps how long the picked vCPU may run before the next
decision (None: until the next tick); ``describe(vcpu)`` gives the numbers behind a
decision for the event trace; ``entitlement(vms, capacity)`` says what each VM
deserves, for the report.

A policy sees ``VCpuInfo`` objects, read-only views of the vCPUs. It keeps its own
state in dicts keyed by ``vcpu.name``. It is called from one thread at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sandbox.hypervisor.policies.entitlement import VmDemand, water_fill

if TYPE_CHECKING:
    from sandbox.config.model import VmConfig

SHARES_PER_VCPU = {"low": 500, "normal": 1000, "high": 2000}   # ESXi's levels
DEFAULT_WEIGHT = 256                                          # Xen credit scheduler
THROTTLE_REASONS = ("limit", "costop")


@dataclass(frozen=True)
class SchedParams:
    """A VM's CPU settings, from its config (each policy reads the ones it honours)."""
    shares: int = 1000                 # the VM's total shares (proportional)
    reservation: float = 0.0           # percent of one pCPU, guaranteed (proportional)
    limit: float | None = None         # percent of one pCPU, never exceeded (proportional)
    weight: int = DEFAULT_WEIGHT       # Xen weight (credit)
    cap: float = 0.0                   # Xen cap, percent of one pCPU; 0 = none (credit)

    @classmethod
    def from_config(cls, cfg: "VmConfig") -> "SchedParams":
        shares = getattr(cfg, "cpu_shares", "normal")
        if isinstance(shares, str):
            shares = SHARES_PER_VCPU[shares] * cfg.vcpus
        return cls(int(shares), float(getattr(cfg, "cpu_reservation", 0) or 0),
                   getattr(cfg, "cpu_limit", None), int(getattr(cfg, "cpu_weight", DEFAULT_WEIGHT)),
                   float(getattr(cfg, "cpu_cap", 0) or 0))


@dataclass(frozen=True)
class HostInfo:
    """What ``setup`` learns about the host."""
    cpus: int
    quantum_ns: int
    deterministic: bool


class VCpuInfo:
    """A read-only view of one vCPU, as policies see it.

    ``name`` ("web/vcpu0"), ``vm``, ``index``, ``vcpus`` (how many the VM has),
    ``params`` (``SchedParams``), ``siblings`` (the VM's other vCPUs), ``state``
    ("ready", "running", "blocked", "created", "done") and the accounting so far, in
    nanoseconds: ``run_ns``, ``ready_ns`` (includes ``limited_ns``), ``limited_ns``,
    ``costop_ns``."""
    __slots__ = ("_seat", "name", "vm", "index", "vcpus")

    def __init__(self, seat: Any) -> None:
        fixed = {"_seat": seat, "name": seat.name, "vm": seat.vm.name, "index": seat.vcpu.index,
                 "vcpus": len(seat.vm.vcpus)}
        for key, value in fixed.items():        # (what never changes is stored, the rest is looked up)
            object.__setattr__(self, key, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"VCpuInfo is read-only (keep policy state in a dict keyed by vcpu.name, "
                             f"not in attribute '{name}')")

    state = property(lambda self: self._seat.phase)
    params = property(lambda self: self._seat.params)         # an administrator may change them
    run_ns = property(lambda self: self._seat.vcpu.stats.run_ns)
    ready_ns = property(lambda self: self._seat.ready_ns + self._seat.limited_ns)
    limited_ns = property(lambda self: self._seat.limited_ns)
    costop_ns = property(lambda self: self._seat.costop_ns)
    siblings = property(lambda self: tuple(s.info for s in self._seat.siblings))

    def __repr__(self) -> str:
        return f"<vCPU {self.name} {self.state}>"


class SchedulingPolicy:
    """Base class: override ``pick`` (and whatever else the policy needs)."""
    name = "abstract"
    description = ""
    honours: tuple[str, ...] = ()      # the VM config keys this policy uses (for the report)

    def setup(self, host: HostInfo) -> None:
        self.host = host

    def pick(self, pcpu: int, runnable: list[VCpuInfo], now_ns: int) -> VCpuInfo | None:
        raise NotImplementedError

    def account(self, vcpu: VCpuInfo, ran_ns: int, now_ns: int) -> None:
        return None

    def block(self, vcpu: VCpuInfo, now_ns: int) -> None:
        return None

    def wake(self, vcpu: VCpuInfo, now_ns: int) -> None:
        return None

    def throttled(self, vcpu: VCpuInfo, now_ns: int) -> str | None:
        return None

    def slice_ns(self, vcpu: VCpuInfo, now_ns: int) -> int | None:
        return None

    def describe(self, vcpu: VCpuInfo) -> dict[str, Any]:
        return {}

    def entitlement(self, vms: list[VmDemand], capacity: float) -> dict[str, float]:
        """Percent of one pCPU each VM deserves, given what it asked for (``demand``)
        and the host's ``capacity`` (100 per pCPU). Default: equal per vCPU."""
        return water_fill(capacity, {v.name: (float(v.vcpus), 0.0, v.demand) for v in vms})
