"""The vCPU scheduler: which vCPU runs on which physical CPU (pCPU), when, for how long.

This is the *mechanism*; every decision is made by a *policy* (``policies/``), a
small plug-in a student can write. The mechanism keeps, for each vCPU, a ``Seat``:
its phase (created, ready, running, blocked, done) and where its time went:

* run: on a pCPU;
* ready: runnable but waiting for a pCPU (esxtop's %RDY); *limited* is the part of
  it spent held back by a limit or cap (%MLMTD);
* co-stop: runnable but held back so that an SMP VM's vCPUs stay in step (%CSTP);
* blocked: halted (``hlt`` with interrupts on) until an interrupt: neither.

Deterministic mode simulates the pCPUs as a discrete-event system. Each pCPU has its
own clock in guest time; the scheduler always serves the pCPU whose clock is
furthest behind: it asks the policy for a vCPU and runs it until the next tick (a
multiple of ``quantum_ms``) or until it blocks, then moves that pCPU's clock on by
what the vCPU executed. A pCPU with nothing to run skips ahead to the next thing
that can change that (a timer deadline, another pCPU's next decision). Same config,
same schedule, on any host. Fast mode runs the same decisions on host threads
(``parallel.py``).

Every decision is a ``sched.switch`` event (pCPU, vCPU in, vCPU out, reason).
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from sandbox.hypervisor import admission
from sandbox.hypervisor.policies import FALLBACK, GuardedPolicy, PolicyFailure, make_policy
from sandbox.hypervisor.policies.base import HostInfo, SchedParams, VCpuInfo
from sandbox.hypervisor.policies.entitlement import VmDemand
from sandbox.vm.vcpu import VCpuState

if TYPE_CHECKING:
    from sandbox.hypervisor.hypervisor import Hypervisor
    from sandbox.vm.machine import VirtualMachine

CREATED, READY, RUNNING, BLOCKED, DONE = "created", "ready", "running", "blocked", "done"
PHASE_OF = {VCpuState.CREATED: CREATED, VCpuState.RUNNABLE: READY, VCpuState.RUNNING: READY,
            VCpuState.HALTED: BLOCKED, VCpuState.DONE: DONE}
WAIT_BUCKET = {"ready": "ready_ns", "limit": "limited_ns", "costop": "costop_ns"}
HISTORY_LIMIT = 8192             # PhysicalCPU.history keeps the most recent slices
STARVED_NS = 1_000_000_000       # a policy that idles every pCPU this long with work waiting has failed


class Seat:
    """The scheduler's record of one vCPU."""
    __slots__ = ("vm", "vcpu", "name", "params", "phase", "since", "reason", "free_at",
                 "ready_ns", "limited_ns", "costop_ns", "siblings", "info")

    def __init__(self, vm: "VirtualMachine", index: int, params: SchedParams) -> None:
        self.vm = vm
        self.vcpu = vm.vcpus[index]
        self.name = self.vcpu.name
        self.params = params
        self.phase = CREATED
        self.since = 0             # start of the waiting stretch not yet accounted
        self.reason = "ready"      # what that stretch counts as: ready, limit or costop
        self.free_at = 0           # (deterministic) the earliest guest time it may run again
        self.ready_ns = self.limited_ns = self.costop_ns = 0
        self.siblings: tuple[Seat, ...] = ()
        self.info = VCpuInfo(self)


class Scheduler:
    def __init__(self, hv: "Hypervisor", policy: GuardedPolicy | None = None) -> None:
        self.hv = hv
        self.policy = policy or make_policy(None)
        self.requested = self.policy.label
        self.failure: PolicyFailure | None = None
        self.params = {cfg.name: SchedParams.from_config(cfg) for cfg in hv.config.vms}
        for cfg in hv.config.vms:
            admission.validate(cfg, self.params[cfg.name])
        self.admitted: dict[str, float] = {}
        self.seats: dict[str, list[Seat]] = {}
        n = len(hv.host.cpus)
        self.clock = [0] * n                       # each pCPU's guest time (deterministic mode)
        self.parked = [False] * n                  # idle with nothing in sight
        self.occupant: list[Seat | None] = [None] * n
        self.decisions = 0
        self._set_up = False
        self._starved_since: int | None = None
        self.parallel = None

    # --- admission (called by the hypervisor at power-on) ------------------------------------
    def admit(self, vm: "VirtualMachine") -> None:
        on = {n: r for n, r in self.admitted.items() if self.hv.vms[n].state.value in ("running", "paused")}
        reservation = self.params[vm.name].reservation
        try:
            admission.admit(vm.name, reservation, len(self.hv.host.cpus), on)
        except admission.AdmissionError as e:
            self.hv.events.publish("sched.admit", vm=vm.name, time_ns=self.hv.now_ns, admitted=False,
                                   reservation=reservation, message=str(e))
            raise
        self.admitted[vm.name] = reservation
        self.hv.events.publish("sched.admit", vm=vm.name, time_ns=self.hv.now_ns, admitted=True,
                               reservation=reservation, reserved=sum(on.values()) + reservation,
                               capacity=100 * len(self.hv.host.cpus))

    def set_params(self, vm_name: str, **changes: Any) -> SchedParams:
        """Change a VM's CPU settings while it runs, as an administrator does in vSphere
        (``shares``, ``reservation``, ``limit``, ``weight``, ``cap``). The policy sees the
        new values at its next decision; a larger reservation must pass admission control."""
        new = dataclasses.replace(self.params[vm_name], **changes)
        vm = self.hv.vms[vm_name]
        admission.validate(vm.config, new)
        if new.reservation > self.params[vm_name].reservation and vm_name in self.admitted:
            others = {n: r for n, r in self.admitted.items()
                      if n != vm_name and self.hv.vms[n].state.value in ("running", "paused")}
            admission.admit(vm_name, new.reservation, len(self.hv.host.cpus), others)
        if vm_name in self.admitted:
            self.admitted[vm_name] = new.reservation
        self.params[vm_name] = new
        for seat in self.seats.get(vm_name, ()):
            seat.params = new
        return new

    # --- keeping the seats in step with the machine --------------------------------------------
    def sync(self, t: int, skip: frozenset[str] = frozenset()) -> None:
        """Give new VMs' vCPUs a seat; notice changes the machine made (except in ``skip``)."""
        if not self._set_up:
            self._set_up = True
            self._call("setup", HostInfo(len(self.hv.host.cpus), self.hv.quantum_ns, self.hv.deterministic), t=t)
        for vm in self.hv.vms.values():
            if vm.name not in self.seats and vm.vcpus:
                seats = [Seat(vm, i, self.params[vm.name]) for i in range(len(vm.vcpus))]
                for s in seats:
                    s.siblings = tuple(o for o in seats if o is not s)
                self.seats[vm.name] = seats
            if vm.name not in skip:
                self._scan(vm, t)

    def all_seats(self) -> list[Seat]:
        return [s for seats in self.seats.values() for s in seats]

    def _scan(self, vm: "VirtualMachine", t: int) -> None:
        """Notice what the machine did to its vCPUs (halt, wake, start-up, power-off)."""
        for seat in self.seats.get(vm.name, ()):
            new = PHASE_OF[seat.vcpu.state] if vm.active else DONE
            old = seat.phase
            if new == old or (old == RUNNING and new == READY and seat.vcpu.state == VCpuState.RUNNING):
                continue
            if old == READY:
                self._accrue(seat, t)
            seat.phase = new
            if new == READY:
                seat.since = seat.free_at = max(t, seat.free_at if old == RUNNING else 0)
                if old in (BLOCKED, CREATED):
                    self._call("wake", seat.info, t, t=t)
                self._classify(seat, seat.since)
            elif old in (READY, RUNNING):
                self._call("block", seat.info, t, t=t)

    # --- accounting of waiting time -------------------------------------------------------------
    def _accrue(self, seat: Seat, t: int) -> None:
        if t > seat.since:
            waited = t - seat.since
            seat.since = t
            if seat.reason == "ready":
                seat.ready_ns += waited
            else:
                bucket = WAIT_BUCKET[seat.reason]
                setattr(seat, bucket, getattr(seat, bucket) + waited)
            seat.vcpu.stats.ready_ns = seat.ready_ns + seat.limited_ns

    def _classify(self, seat: Seat, t: int) -> None:
        reason = self._call("throttled", seat.info, t, t=t) or "ready"
        if reason != seat.reason:
            seat.reason = reason
            if self.hv.events.wants("sched.throttle"):
                self.hv.events.publish("sched.throttle", vm=seat.vm.name, time_ns=t, vcpu=seat.vcpu.index,
                                       reason=reason)

    def refresh(self, t: int) -> None:
        """Account every waiting vCPU up to ``t`` and ask the policy whether it is held back."""
        classify = self.policy.has("throttled")
        for seats in self.seats.values():
            for seat in seats:
                if seat.phase == READY and seat.since <= t:
                    self._accrue(seat, t)
                    if classify:
                        self._classify(seat, t)

    def settle(self, t: int) -> None:
        for seat in self.all_seats():
            if seat.phase == READY:
                self._accrue(seat, t)

    # --- asking the policy ------------------------------------------------------------------------
    def _call(self, method: str, *args: Any, t: int) -> Any:
        try:
            return getattr(self.policy, method)(*args)
        except PolicyFailure as failure:
            self._fall_back(failure, t)
            return getattr(self.policy, method)(*args)

    def _fall_back(self, failure: PolicyFailure, t: int) -> None:
        self.failure = failure
        self.hv.events.publish("sched.policy_error", vm=None, time_ns=t, policy=failure.policy,
                               method=failure.method, message=str(failure), fallback=FALLBACK)
        self.policy = make_policy(FALLBACK)
        self.policy.setup(HostInfo(len(self.hv.host.cpus), self.hv.quantum_ns, self.hv.deterministic))
        for seat in self.all_seats():
            if seat.phase == READY:
                self._accrue(seat, t)
                seat.reason = "ready"

    def decide(self, pcpu: int, t: int, busy_vms: frozenset[str] = frozenset()) -> tuple[Seat | None, bool]:
        """The policy's choice for ``pcpu`` at ``t``; also whether anything was on offer."""
        offer = [s.info for name, seats in self.seats.items() if name not in busy_vms
                 for s in seats if s.phase == READY and s.reason == "ready" and s.free_at <= t]
        if not offer:
            return None, False
        choice: VCpuInfo | None = self._call("pick", pcpu, offer, t, t=t)
        if choice is None and not any(self.occupant) and not busy_vms:
            self._starved_since = t if self._starved_since is None else self._starved_since
            if t - self._starved_since >= STARVED_NS:
                self._fall_back(PolicyFailure(self.policy.label, "pick", f"left every pCPU idle for "
                                              f"{STARVED_NS / 1e9:g} s while {len(offer)} vCPU(s) were "
                                              f"runnable"), t)
                choice = self._call("pick", pcpu, offer, t, t=t)
        if choice is not None:
            self._starved_since = None
        self.decisions += 1
        return (choice._seat if choice is not None else None), True

    # --- what a decision does -------------------------------------------------------------------
    def switch(self, pcpu: int, seat: Seat | None, t: int) -> None:
        out = self.occupant[pcpu]
        self.occupant[pcpu] = seat
        if (seat is None and out is None) or not self.hv.events.wants("sched.switch"):
            return
        if out is None:
            reason = "dispatch"
        elif out is seat:
            reason = "continue"
        elif out.phase == READY:
            reason = "preempt" if out.reason == "ready" else out.reason
        else:
            reason = {BLOCKED: "block", RUNNING: "migrate"}.get(out.phase, "stopped")
        data: dict[str, Any] = {"pcpu": pcpu, "vcpu": seat.vcpu.index if seat else None,
                                "vcpu_in": seat.name if seat else None, "vcpu_out": out.name if out else None,
                                "reason": reason, "policy": self.policy.label}
        if seat is not None:
            data["why"] = self._call("describe", seat.info, t=t)
        self.hv.events.publish("sched.switch", vm=seat.vm.name if seat else None, time_ns=t, **data)

    def slice_end(self, seat: Seat, t: int, end: int) -> int:
        """The end of the picked vCPU's slice: the tick's end, or earlier if the policy says."""
        length = self._call("slice_ns", seat.info, t, t=t)
        return end if length is None else min(end, t + length)

    def begin(self, seat: Seat, t: int) -> None:
        self._accrue(seat, t)
        seat.phase = RUNNING

    def finish(self, pcpu: int, seat: Seat, start: int, end: int) -> None:
        """``seat`` ran on ``pcpu`` from ``start`` to ``end``: account it, notice what changed."""
        ran = max(0, end - start)
        cpu = self.hv.host.cpus[pcpu]
        cpu.busy_ns += ran
        seat.vcpu.stats.run_ns += ran
        hist = cpu.history
        if hist and hist[-1][2] == seat.name and hist[-1][1] == start:
            hist[-1] = (hist[-1][0], end, seat.name)
        else:
            hist.append((start, end, seat.name))
            if len(hist) > HISTORY_LIMIT:
                del hist[:HISTORY_LIMIT // 2]
        self._call("account", seat.info, ran, end, t=end)
        seat.free_at = end
        self._scan(seat.vm, end)

    # --- deterministic mode: one discrete-event step -------------------------------------------
    def round(self, active: list["VirtualMachine"], until_ns: int | None) -> bool:
        """Serve the pCPU furthest behind. False when nothing can ever run again."""
        if not self.hv.deterministic:
            if self.parallel is None:
                from sandbox.hypervisor.parallel import ParallelRunner   # noqa: PLC0415
                self.parallel = ParallelRunner(self)
            return self.parallel.run(until_ns)
        if all(self.parked):
            self.parked = [False] * len(self.parked)
            self.clock = [max(c, self.hv.now_ns) for c in self.clock]
        p = min((c, i) for i, c in enumerate(self.clock) if not self.parked[i])[1]
        t = self.clock[p]
        self.hv.now_ns = max(self.hv.now_ns, t)
        if until_ns is not None and t >= until_ns:
            self.settle(t)
            return True
        self.sync(t)
        self.advance_idle_vms(t)
        self.refresh(t)
        seat, offered = self.decide(p, t)
        self.switch(p, seat, t)
        if seat is None:
            self._idle(p, t, offered, until_ns)
        else:
            end = min(self._tick_end(t, until_ns), self.next_wake(t))
            self._run(p, seat, t, self.slice_end(seat, t, end))
        return not all(self.parked)

    def _tick_end(self, t: int, until_ns: int | None) -> int:
        q = self.hv.quantum_ns
        end = (t // q + 1) * q
        return min(end, until_ns) if until_ns is not None else end

    def _run(self, p: int, seat: Seat, t: int, end: int) -> None:
        vm = seat.vm
        self.begin(seat, t)
        # A VM's clock is where its last vCPU stopped; an SMP sibling runs the same stretch
        # of guest time again on its own pCPU, so the clock is set back to this pCPU's time.
        vm.clock.base_ns = t
        vm.run_vcpu(seat.vcpu, end)
        stop = max(vm.clock.now(), t + 1)
        self.clock[p] = stop
        self.finish(p, seat, t, stop)
        for q in range(len(self.parked)):
            if self.parked[q]:
                self.parked[q] = False
                self.clock[q] = stop

    def _sleeping(self, vm: "VirtualMachine") -> bool:
        """Every vCPU of ``vm`` is halted (or not started): only an interrupt can wake it."""
        for seat in self.seats.get(vm.name, ()):
            if seat.phase == READY or seat.phase == RUNNING:
                return False
        return True

    def next_wake(self, t: int) -> int:
        """The next timer deadline of a VM whose vCPUs all sleep: it may wake one, and the
        policy may want it to preempt (Xen's BOOST), so the running slice ends there."""
        nxt = 1 << 62
        for vm in self.hv.active_vms:
            if self._sleeping(vm):
                d = vm.next_deadline()
                if d is not None and t < d < nxt:
                    nxt = d
        return nxt

    def _idle(self, p: int, t: int, offered: bool, until_ns: int | None) -> None:
        """Nothing to run on ``p`` now: sleep until something can change."""
        times = [c for q, c in enumerate(self.clock) if q != p and not self.parked[q] and c > t]
        for vm in self.hv.active_vms:
            d = vm.next_deadline()
            if d is not None and d > t:
                times.append(d)
        for seat in self.all_seats():
            if seat.phase == READY:
                times.append(seat.free_at if seat.free_at > t else self._tick_end(t, None))
        if offered:
            times.append(self._tick_end(t, None))     # the policy chose to idle: ask again next tick
        times = [x for x in times if x > t]
        if not times:
            self.parked[p] = True
            return
        nxt = min(times)
        self.clock[p] = min(nxt, until_ns) if until_ns is not None else nxt

    def advance_idle_vms(self, t: int, busy_vms: frozenset[str] = frozenset()) -> None:
        """Bring the devices of VMs whose vCPUs all sleep up to ``t``, deadline by deadline,
        so a timer interrupt wakes its vCPU at the right moment. (A VM with a runnable vCPU
        catches up when it next runs, as a descheduled VM's timer does on real hypervisors.)"""
        for vm in self.hv.active_vms:
            if vm.name in busy_vms or not self._sleeping(vm):
                continue
            last = -1
            while (d := vm.next_deadline()) is not None and last < d <= t:
                last = d
                vm.clock.set(d)
                vm.advance_devices(d)
                self._scan(vm, d)
            vm.clock.set(t)

    # --- for the report and the GUI -----------------------------------------------------------------
    def entitlements(self) -> dict[str, float]:
        """Percent of one pCPU each VM deserves under the current policy, given its demand."""
        elapsed = max(self.hv.now_ns, 1)
        vms = []
        for name, seats in self.seats.items():
            wanted = sum(s.vcpu.stats.run_ns + s.ready_ns + s.limited_ns + s.costop_ns for s in seats)
            vms.append(VmDemand(name, len(seats), self.params[name], min(100.0 * len(seats), 100 * wanted / elapsed)))
        return self._call("entitlement", vms, 100.0 * len(self.hv.host.cpus), t=self.hv.now_ns) or {}

    def describe(self) -> dict[str, Any]:
        return {"policy": self.policy.label, "requested": self.requested,
                "description": self.policy.description, "honours": list(self.policy.honours),
                "quantum_ms": self.hv.quantum_ns / 1e6, "decisions": self.decisions,
                "mode": "deterministic" if self.hv.deterministic else "fast",
                "threads": self.parallel.threads if self.parallel is not None else 1,
                "serialised": self.parallel.serial_reason if self.parallel is not None else None,
                "policy_error": str(self.failure) if self.failure else None}
