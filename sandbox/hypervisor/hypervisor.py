"""The hypervisor: owns the host, the VMs, the memory manager and the scheduler.

This is the middle layer of the seed diagram. ``run`` repeats scheduling rounds
(``scheduler.py``) until every VM has stopped or a limit is reached.
"""
from __future__ import annotations

import time
from typing import Callable

from sandbox.config.model import MachineConfig
from sandbox.errors import BackendUnavailable, SandboxError
from sandbox.events import EventBus
from sandbox.host.host import Host
from sandbox.hypervisor.backends import ENGINES
from sandbox.hypervisor.memory_manager import MemoryManager
from sandbox.hypervisor.scheduler import Scheduler
from sandbox.vm.machine import VirtualMachine, VmState


class Hypervisor:
    def __init__(self, config: MachineConfig, events: EventBus | None = None) -> None:
        self.config = config
        engine = ENGINES.get(config.host.backend)
        if engine is None:
            raise BackendUnavailable(f"unknown backend '{config.host.backend}' (choose: {', '.join(ENGINES)})")
        self.engine = engine
        self.backend_name = engine.name
        self.deterministic = config.host.deterministic and engine.deterministic
        self.events = events or EventBus()
        self.now_ns = 0
        self.events.clock = lambda: self.now_ns
        self.host = Host.create(config.host.cpus, config.host_memory_mib())
        self.memory_manager = MemoryManager(self.host.ram, self._publish_for_vm)
        self.quantum_ns = int(config.host.quantum_ms * 1_000_000)
        self.vms: dict[str, VirtualMachine] = {}
        for vm_config in config.vms:
            self.vms[vm_config.name] = VirtualMachine(vm_config, self)
        self.scheduler = Scheduler(self)

    def _publish_for_vm(self, kind: str, vm: str | None = None, **data: object) -> None:
        vm_obj = self.vms.get(vm) if vm else None
        t = vm_obj.clock.now() if vm_obj is not None else self.now_ns
        self.events.publish(kind, vm=vm, time_ns=t, **data)

    def make_backend(self, vm: VirtualMachine, index: int):
        return self.engine.factory(vm, index)

    # --- life cycle -----------------------------------------------------------------------
    def power_on(self, name: str | None = None) -> None:
        for vm in self.vms.values():
            if name is None or vm.name == name:
                vm.power_on()
                if vm.config.input:
                    vm.feed_input(vm.config.input)

    @property
    def active_vms(self) -> list[VirtualMachine]:
        return [vm for vm in self.vms.values() if vm.active]

    def run(self, until_ns: int | None = None, wall_timeout_s: float | None = None,
            should_stop: Callable[[], bool] | None = None) -> str:
        """Run until every VM has stopped ("stopped"), guest time ``until_ns`` ("time"),
        the wall-clock timeout ("timeout"), every VM waits forever ("idle"), or
        ``should_stop()`` ("interrupted")."""
        deadline = time.monotonic() + wall_timeout_s if wall_timeout_s else None
        while True:
            active = self.active_vms
            if not active:
                return "stopped"
            if until_ns is not None and self.now_ns >= until_ns:
                return "time"
            if deadline is not None and time.monotonic() >= deadline:
                return "timeout"
            if should_stop is not None and should_stop():
                return "interrupted"
            if not self.scheduler.round(active, until_ns):
                return "idle"

    def timeout_all(self, reason: str) -> None:
        for vm in self.active_vms:
            vm.stop(VmState.TIMED_OUT, reason, None)

    def close(self) -> None:
        for vm in self.vms.values():
            vm.close()


__all__ = ["Hypervisor", "SandboxError"]
