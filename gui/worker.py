"""The machine's own thread: runs guest time in short chunks and, between chunks,
the GUI's commands, and copies snapshots for the views.

Nothing here knows about Qt. The GUI side only touches the ``Outbox`` (deques and a
snapshot reference, safe to share between threads) and the command queue.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError
from sandbox.events import Event

from gui.breakpoints import BreakpointEngine
from gui.commands import COMMANDS
from gui.snapshot import Snapshot, SnapshotTaker
from gui.speeds import SPEEDS, paced, traced_kinds

if TYPE_CHECKING:
    from sandbox.api import Machine

SNAPSHOT_PERIOD_S = 1 / 30      # copying costs the machine's thread: 30 a second is enough
FULL_CHUNK_NS = 50_000_000      # guest time per run() call at full speed (it yields earlier)
SLOW_FRAME_S = 1 / 30           # slow motion advances guest time in steps this long
EVENT_BACKLOG = 50_000          # events kept for the GUI if it falls behind (oldest dropped)


@dataclass
class Outbox:
    """What the worker hands to the GUI thread."""
    events: deque = field(default_factory=lambda: deque(maxlen=EVENT_BACKLOG))
    console: dict[str, deque] = field(default_factory=dict)
    messages: deque = field(default_factory=lambda: deque(maxlen=200))
    snapshot: Snapshot | None = None
    published: int = 0              # events handed over so far


@dataclass
class Ticket:
    """A queued command; ``done`` is set when the worker has run it."""
    name: str
    args: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: str | None = None
    number: int = 0                 # commands the worker had run when it finished this one

    def wait(self, timeout: float = 10.0) -> Any:
        if not self.done.wait(timeout):
            raise TimeoutError(f"the machine did not run '{self.name}' within {timeout} s")
        return self.result


class Worker:
    def __init__(self, machine: "Machine", outbox: Outbox) -> None:
        self.machine = machine
        self.out = outbox
        self.commands: queue.SimpleQueue[Ticket] = queue.SimpleQueue()
        self.speed = "full"
        self.target_ns: int | None = None
        self.inspect: tuple[str, int, bool] | None = None
        self.trace_frequent = False
        self.stopped_at: str | None = None
        self.breaks = BreakpointEngine(machine)
        self.snapshots = SnapshotTaker(machine)
        self.rounds_run = 0
        self.commands_run = 0
        self._wake = threading.Event()
        self._quit = False
        self._force = True
        self._next_snapshot = 0.0
        self._unsubscribe = None
        self._thread = threading.Thread(target=self._loop, name="machine-worker", daemon=True)
        for name in machine.vms:
            sink = outbox.console.setdefault(name, deque())
            machine.attach_console(name, sink.append)
        self.retrace()

    # --- called from the GUI thread ------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def submit(self, command: str, /, **args: Any) -> Ticket:
        if command not in COMMANDS:
            raise KeyError(f"unknown command {command!r}")
        ticket = Ticket(command, args)
        self.commands.put(ticket)
        self._wake.set()
        return ticket

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish and wait; False if it is still running after ``timeout``."""
        self._quit = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- worker thread ------------------------------------------------------------------------
    def set_speed(self, name: str) -> None:
        if self.speed == "step" and name != "step":
            self._step_over_breakpoints()
            self.stopped_at = None
        if name != self.speed:
            self.speed = name
            self.retrace()
        self._force = True

    def retrace(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        kinds = traced_kinds(self.trace_frequent or SPEEDS[self.speed].trace_all)
        self._unsubscribe = self.machine.events.subscribe(self._on_event, kinds)

    def rearm_breakpoints(self) -> None:
        for problem in self.breaks.rearm():
            self.out.messages.append(problem)

    def _on_event(self, ev: Event) -> None:
        self.out.events.append(ev)
        self.out.published += 1
        pace = SPEEDS[self.speed].pace_s
        if pace and paced(ev.kind) and not self._quit:
            self._publish(force_ram=True, between_rounds=False)
            self._wake.wait(pace)

    def _loop(self) -> None:
        while not self._quit:
            self._run_commands()
            ran = False
            if not self._quit and self._may_run():
                ran = self._run_chunk()
            hit = self.breaks.take_hit()
            if hit is not None:
                self._stop_at(hit.detail)
            if self._force or ran and time.monotonic() >= self._next_snapshot:
                self._publish()         # a paused machine only changes through commands (forced)
            if not ran:
                self._wake.wait(0.05)
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _run_commands(self) -> None:
        self._wake.clear()          # set again by any command that arrives from now on
        while True:
            try:
                ticket = self.commands.get_nowait()
            except queue.Empty:
                return
            try:
                ticket.result = COMMANDS[ticket.name].run(self, **ticket.args)
                if isinstance(ticket.result, str):
                    self.out.messages.append(ticket.result)
            except SandboxError as e:
                ticket.error = str(e)
                self.out.messages.append(f"error: {e}")
            except Exception as e:          # noqa: BLE001 (the worker must survive a bug)
                ticket.error = f"{ticket.name} failed: {e!r}"
                self.out.messages.append(f"internal error: {ticket.error}")
                traceback.print_exc(file=sys.stderr)
            finally:
                self._force = True
                self.commands_run += 1
                ticket.number = self.commands_run
                ticket.done.set()

    def _may_run(self) -> bool:
        if self.speed == "step" and self.target_ns is None:
            return False
        return any(vm.active for vm in self.machine.vms.values())

    def _should_yield(self) -> bool:
        return (not self.commands.empty() or self._quit or self.breaks.hit is not None
                or time.monotonic() >= self._next_snapshot)

    def _run_chunk(self) -> bool:
        m = self.machine
        now = m.now_ns
        started = time.monotonic()
        slow = SPEEDS[self.speed].guest_ns_per_s if self.target_ns is None else None
        chunk = int(slow * SLOW_FRAME_S) if slow else FULL_CHUNK_NS
        until = now + chunk if self.target_ns is None else min(self.target_ns, now + chunk)
        try:
            result = m.run(until_ns=until, should_stop=self._should_yield)
        except Exception as e:              # noqa: BLE001 (show it, pause, keep the GUI alive)
            traceback.print_exc(file=sys.stderr)
            self.out.messages.append(f"internal error while running: {e!r}; machine paused")
            self._stop_at(None)
            return False
        self.rounds_run += 1
        if self.target_ns is not None and (m.now_ns >= self.target_ns or result in ("stopped", "idle")):
            self.target_ns = None
            self.set_speed("step")
        if slow:
            self._wake.wait(max(0.0, started + SLOW_FRAME_S - time.monotonic()))
        return result not in ("stopped", "idle")

    def _stop_at(self, why: str | None) -> None:
        self.target_ns = None
        self.set_speed("step")
        self.stopped_at = why
        if why:
            self.out.messages.append(f"breakpoint: {why}")

    def _step_over_breakpoints(self) -> None:
        for vm in self.machine.vms.values():
            if vm.active:
                for cpu in vm.vcpus:
                    try:
                        self.breaks.step_over(vm.name, cpu.index, cpu.backend.linear_pc())
                    except Exception:       # noqa: BLE001 (a vCPU without a PC yet)
                        pass

    def _publish(self, force_ram: bool = False, between_rounds: bool = True) -> None:
        self.out.snapshot = self.snapshots.take(
            self.speed, self.inspect, tuple(b.describe() for b in self.breaks.breakpoints),
            self.stopped_at, force_ram=force_ram or self._force, between_rounds=between_rounds,
            commands=self.commands_run)
        self._force = False
        self._next_snapshot = time.monotonic() + SNAPSHOT_PERIOD_S
