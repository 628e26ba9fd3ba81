"""Fast mode: every physical CPU is a host thread, and vCPUs really run in parallel.

Guest time is wall-clock time. Each pCPU thread repeats: take the scheduler lock, let
the policy pick a vCPU (the same ``Scheduler.decide`` as in deterministic mode),
release the lock, run the vCPU for one tick, take the lock again and account what it
used. Unicorn releases Python's GIL inside ``emu_start``, so two pCPU threads execute
guest code at the same time; only the Python around it (the decision, the run loop,
exits served by device models) takes turns on the GIL.

Time slices end the way a real hypervisor ends them: a timer. One ``SliceTimer``
thread sleeps until the earliest slice deadline and then asks that vCPU to stop
(``request_stop``), like the host timer interrupt that kicks a vCPU out of guest mode.
(Unicorn's own ``emu_start`` timeout starts a polling thread for every call.)

Two rules keep the Python machinery single-threaded where it must be:

* the vCPUs of one VM never run at the same instant on two threads, because a VM's
  device models and clock belong to one thread at a time; different VMs run in
  parallel (an SMP VM's vCPUs take turns; its waiting counts as ready time);
* when host memory is overcommitted or pages are shared, the memory manager may
  change *another* VM's mappings during a fault, so vCPUs then run one at a time
  (still scheduled on every pCPU, but serialised), and the report says so.

``run`` returns to the hypervisor every ``CHUNK_NS`` of guest time so that timeouts,
pausing and the memory manager's tick happen between chunks, with no vCPU running.
"""
from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.hypervisor.scheduler import Scheduler

CHUNK_NS = 50_000_000        # the hypervisor's run loop regains control this often
RETRY_NS = 200_000           # a vCPU that has not stopped yet is asked again
SLACK_NS = 100_000           # the slice may end this early (the timer ends it on time)
MIN_SLICE_NS = 200_000       # a wake-up deadline does not cut a slice shorter than this
GIL_SWITCH_S = 0.0002        # Python's default 5 ms would let a busy thread delay the timer


class SliceTimer:
    """One host thread that ends time slices by asking running vCPUs to stop."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: dict[int, tuple[int, "VCpuBackend"]] = {}     # pCPU -> (wall ns, vCPU)
        self._stopped = False
        self._wakes_at: int | None = None     # when the timer thread looks again (None: when told)
        self._thread = threading.Thread(target=self._loop, name="slice-timer", daemon=True)
        self._thread.start()

    def arm(self, pcpu: int, backend: "VCpuBackend", wall_ns: int) -> None:
        with self._cond:
            self._due[pcpu] = (wall_ns, backend)
            if self._wakes_at is None or self._wakes_at > wall_ns:
                self._cond.notify()           # (otherwise it will see this deadline in time)

    def disarm(self, pcpu: int) -> None:
        with self._cond:
            self._due.pop(pcpu, None)

    def close(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._due:
                    self._wakes_at = None
                    self._cond.wait()
                    continue
                pcpu, (when, backend) = min(self._due.items(), key=lambda kv: kv[1][0])
                now = time.perf_counter_ns()
                if when > now:
                    self._wakes_at = when
                    self._cond.wait((when - now) / 1e9)
                    continue
                backend.request_stop()
                self._due[pcpu] = (now + RETRY_NS, backend)


class TurnLock:
    """A lock handed to waiting threads in arrival order (``threading.Lock`` is not fair:
    the thread that just released it usually takes it again at once)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class ParallelRunner:
    def __init__(self, sched: "Scheduler") -> None:
        self.sched = sched
        self.hv = sched.hv
        self.lock = threading.Condition()
        self.busy: set[str] = set()                 # VMs with a vCPU on a pCPU thread now
        self.serial_reason = self._serial_reason()
        self.exclusive = TurnLock() if self.serial_reason else contextlib.nullcontext()
        self.threads = len(self.hv.host.cpus)

    def _serial_reason(self) -> str | None:
        cfg = self.hv.config
        if getattr(cfg.host, "page_sharing", False):
            return "page sharing is on (a fault may change another VM's mappings)"
        guest_mib = sum(max(vm.memory_mib, 1) for vm in cfg.vms)
        if self.hv.host.memory_mib < guest_mib:
            return (f"host memory is overcommitted ({self.hv.host.memory_mib} MiB for "
                    f"{guest_mib} MiB of guest RAM: a fault may reclaim another VM's pages)")
        return None

    def now(self) -> int:
        return self._origin_ns + time.perf_counter_ns() - self._origin_wall

    def _wall(self, guest_ns: int) -> int:
        return self._origin_wall + guest_ns - self._origin_ns

    def run(self, until_ns: int | None) -> bool:
        """Run every pCPU thread for one chunk. False when nothing can ever run again."""
        hv = self.hv
        self._origin_ns, self._origin_wall = hv.now_ns, time.perf_counter_ns()
        self.stop_at = hv.now_ns + CHUNK_NS if until_ns is None else min(until_ns, hv.now_ns + CHUNK_NS)
        self.done = False
        self.idle_forever = False
        self.error: BaseException | None = None
        self.sched.sync(hv.now_ns)
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        timer = SliceTimer()
        workers = [threading.Thread(target=self._worker, args=(p, timer), name=f"pcpu{p}", daemon=True)
                   for p in range(self.threads)]
        try:
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        except BaseException:
            with self.lock:
                self.done = True
                self.lock.notify_all()
            for seat in self.sched.all_seats():
                seat.vcpu.backend.request_stop()
            for w in workers:
                w.join()
            raise
        finally:
            timer.close()
            sys.setswitchinterval(switch_interval)
        if not self.idle_forever:            # (the last slices may end a little after stop_at)
            hv.now_ns = max(hv.now_ns, self.now())
        self.sched.settle(hv.now_ns)
        if self.error is not None:
            raise self.error
        return not self.idle_forever or not hv.active_vms     # (no VM left: the hypervisor says "stopped")

    def _worker(self, p: int, timer: SliceTimer) -> None:
        while True:
            with self.exclusive, self.lock:
                wait = self._step(p, timer)
            if wait is None:
                return
            if wait > 0:
                with self.lock:
                    if not self.done:
                        self.lock.wait(wait / 1e9)

    def _step(self, p: int, timer: SliceTimer) -> int | None:
        """One decision on pCPU ``p`` (lock held). Returns how long to sleep (0: go on),
        or None when this thread is done."""
        sched, hv = self.sched, self.hv
        t = self.now()
        if self.done or t >= self.stop_at or not hv.active_vms:
            return None
        hv.now_ns = max(hv.now_ns, t)
        busy = frozenset(self.busy)
        try:
            sched.sync(t, skip=busy)
            sched.advance_idle_vms(t, busy)
            sched.refresh(t)
            seat, offered = sched.decide(p, t, busy)
            sched.switch(p, seat, t)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread
            self._fail(e)
            return None
        if seat is not None:
            self._run(p, seat, t, timer)
            return 0
        wait = self._next_event(t, offered)
        if wait is None and not self.busy:
            self.idle_forever = self.done = True          # every vCPU waits forever
            self.lock.notify_all()
            return None
        return max(1, wait if wait is not None else hv.quantum_ns)

    def _run(self, p: int, seat, t: int, timer: SliceTimer) -> None:
        """Called and returns with the lock held; runs the vCPU without it."""
        sched, vm = self.sched, seat.vm
        self.busy.add(vm.name)
        sched.begin(seat, t)
        # The slice ends at the tick, or when a sleeping VM's timer may wake it (so the
        # policy can let it preempt), but not sooner than MIN_SLICE_NS.
        wake = max(sched.next_wake(t), t + MIN_SLICE_NS)
        end = sched.slice_end(seat, t, min(t + self.hv.quantum_ns, self.stop_at, wake))
        vm.clock.set(t)
        start = vm.clock.now()
        timer.arm(p, seat.vcpu.backend, self._wall(end))
        self.lock.release()
        try:
            vm.run_vcpu(seat.vcpu, end - min(SLACK_NS, (end - t) // 2), wall_slice_us=0)
        except BaseException as e:  # noqa: BLE001
            with self.lock:
                self._fail(e)
        finally:
            self.lock.acquire()
            timer.disarm(p)
        stop = max(vm.clock.now(), start + 1)
        try:
            sched.finish(p, seat, start, stop)
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
        self.busy.discard(vm.name)
        self.lock.notify_all()

    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.done = True
        self.lock.notify_all()

    def _next_event(self, t: int, offered: bool) -> int | None:
        """How long an idle pCPU thread may sleep (ns); None: nothing in sight."""
        times = [self.stop_at]
        for vm in self.hv.active_vms:
            if vm.name not in self.busy:
                d = vm.next_deadline()
                if d is not None:
                    times.append(d)
        throttled = any(s.phase == "ready" for s in self.sched.all_seats())
        if not offered and not throttled and len(times) == 1:
            return None
        if offered or throttled:
            times.append(t + self.hv.quantum_ns)
        return max(0, min(times) - t)
