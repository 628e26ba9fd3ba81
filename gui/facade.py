"""The one object between the GUI and the hypervisor (as Ripes' ProcessorHandler).

The GUI calls its command methods (each queues a command for the worker thread and
returns a ``Ticket``), and, from its refresh timer, drains what the worker produced:
events, console output, status messages and the newest ``Snapshot``. Views never
call into the machine; static facts (VM names, configs, the device table) are
copied here once at start.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable, Iterable

from sandbox.api import Machine
from sandbox.config.model import MachineConfig
from sandbox.devices.registry import PC_DEVICES, DeviceSpec
from sandbox.events import Event

from gui.breakpoints import Breakpoint
from gui.snapshot import Snapshot
from gui.worker import Outbox, Ticket, Worker


class MachineFacade:
    def __init__(self, machine: Machine, notes: Iterable[str] = (), on_close: Callable[[], None] | None = None,
                 start: bool = True) -> None:
        self._machine = machine
        self.config: MachineConfig = machine.config
        self.vm_names: tuple[str, ...] = tuple(machine.vms)
        self.devices: tuple[DeviceSpec, ...] = PC_DEVICES
        self.host_cpus = len(machine.hypervisor.host.cpus)
        self.host_disks = tuple(machine.hypervisor.host.disks)
        self.host_nics = tuple(machine.hypervisor.host.nics)
        self.breakpoints: list[Breakpoint] = []
        self._on_close = on_close
        self._closed = False
        self._out = Outbox()
        self._drained = 0
        self._worker = Worker(machine, self._out)
        for note in notes:
            self._out.messages.append(note)
        if start:
            self._worker.start()

    @classmethod
    def open(cls, path: str | Path | None = None) -> "MachineFacade":
        """A machine.toml, or the embedded default scenario when ``path`` is None."""
        if path is not None:
            return cls(Machine(path))
        from gui.scenario import default_scenario   # noqa: PLC0415
        scenario = default_scenario()
        return cls(Machine(scenario.config), scenario.notes, on_close=scenario.close)

    def vm_config(self, name: str):
        return next(vm for vm in self.config.vms if vm.name == name)

    # --- commands (queued; run by the worker between scheduler rounds) -------------------------
    def _submit(self, command: str, /, **args) -> Ticket:
        return self._worker.submit(command, **args)

    def power_on(self, vm: str | None = None) -> Ticket:
        return self._submit("power_on", vm=vm)

    def pause_vm(self, vm: str) -> Ticket:
        return self._submit("pause", vm=vm)

    def resume_vm(self, vm: str) -> Ticket:
        return self._submit("resume", vm=vm)

    def power_off(self, vm: str) -> Ticket:
        return self._submit("power_off", vm=vm)

    def reset(self, vm: str) -> Ticket:
        return self._submit("reset", vm=vm)

    def crash(self, vm: str) -> Ticket:
        return self._submit("crash", vm=vm)

    def feed(self, vm: str, text: str) -> Ticket:
        return self._submit("feed", vm=vm, text=text)

    def step(self, vm: str, vcpu: int = 0, count: int = 1) -> Ticket:
        return self._submit("step", vm=vm, vcpu=vcpu, count=count)

    def set_speed(self, name: str) -> Ticket:
        return self._submit("speed", name=name)

    def run_until(self, guest_ns: int) -> Ticket:
        return self._submit("run_until", ns=guest_ns)

    def inspect(self, vm: str | None, vcpu: int = 0, screen: bool = True) -> Ticket:
        """Copy this vCPU's registers and code (and the VM's screen, if ``screen``) into snapshots."""
        return self._submit("inspect", vm=vm, vcpu=vcpu, screen=screen)

    def trace_frequent(self, on: bool) -> Ticket:
        return self._submit("trace_frequent", on=on)

    def add_breakpoint(self, bp: Breakpoint) -> Ticket:
        if bp not in self.breakpoints:
            self.breakpoints.append(bp)
        return self._submit("breakpoints", items=list(self.breakpoints))

    def remove_breakpoint(self, bp: Breakpoint) -> Ticket:
        if bp in self.breakpoints:
            self.breakpoints.remove(bp)
        return self._submit("breakpoints", items=list(self.breakpoints))

    def lesson_step(self, player, choice: int | None = None) -> Ticket:
        """Play a lesson step in the machine's thread; the ticket's result is its StepResult."""
        return self._submit("lesson_step", player=player, choice=choice)

    def barrier(self) -> Ticket:
        return self._submit("barrier")

    # --- what the GUI's refresh timer drains ---------------------------------------------------
    def drain_events(self, limit: int = 20_000) -> list[Event]:
        events, source = [], self._out.events
        while source and len(events) < limit:
            events.append(source.popleft())
        self._drained += len(events)
        return events

    @property
    def events_dropped(self) -> int:
        """Events the worker published that fell off the backlog before the GUI took them."""
        return self._out.published - self._drained - len(self._out.events)

    def drain_console(self) -> dict[str, bytes]:
        out = {}
        for name, chunks in self._out.console.items():
            parts = []
            while chunks:
                parts.append(chunks.popleft())
            if parts:
                out[name] = b"".join(parts)
        return out

    def drain_messages(self) -> list[str]:
        out = []
        while self._out.messages:
            out.append(self._out.messages.popleft())
        return out

    def snapshot(self) -> Snapshot | None:
        return self._out.snapshot

    # --- for tests, the screenshot command and the benchmark ---------------------------------------
    def wait_for(self, predicate: Callable[[Snapshot], bool], timeout: float = 20.0) -> Snapshot:
        """Wait (in the calling thread) for a snapshot satisfying ``predicate``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            snap = self._out.snapshot
            if snap is not None and predicate(snap):
                return snap
            time.sleep(0.005)
        raise TimeoutError("the machine did not reach the expected state in time")

    def settle(self, timeout: float = 20.0) -> Snapshot:
        """Wait until every queued command ran and a snapshot taken after them is out."""
        ticket = self.barrier()
        ticket.wait(timeout)
        return self.wait_for(lambda s: s.commands >= ticket.number, timeout)

    @property
    def worker_rounds(self) -> int:
        return self._worker.rounds_run

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._worker.stop():
            # Closing the engine under a running vCPU could crash the process: leave it.
            print("sandbox-gui: the machine thread did not stop in time; not closing the machine",
                  file=sys.stderr)
            return
        self._machine.close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None

    def __enter__(self) -> "MachineFacade":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
