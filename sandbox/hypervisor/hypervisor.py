"""The hypervisor: owns the host, the VMs, the memory manager and the scheduler.

This is the middle layer of the seed diagram. ``run`` repeats scheduling rounds
(``scheduler.py``) until every VM has stopped or a limit is reached.
"""
from __future__ import annotations

import time
from typing import Callable

from sandbox.config.model import MachineConfig, VmConfig
from sandbox.errors import BackendUnavailable, SandboxError
from sandbox.events import EventBus
from sandbox.host.host import Host, PhysicalDisk
from sandbox.hypervisor.backends import ENGINES
from sandbox.hypervisor.memory_manager import MemoryManager
from sandbox.hypervisor.policies import make_policy
from sandbox.hypervisor.scheduler import Scheduler
from sandbox.hypervisor.tlb_shootdown import shootdown
from sandbox.net.network import Network
from sandbox.storage.disk_port import DiskPort
from sandbox.storage.host_disks import attach_vm_disk, make_io_queues
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
        self.memory_manager = MemoryManager(self.host.ram, self._publish_for_vm, config.host, config.vms,
                                            wants=self.events.wants, shootdown=self._shootdown,
                                            finished=self._finished)
        self.quantum_ns = int(config.host.quantum_ms * 1_000_000)
        # The virtual switches. A frame reaches another VM's NIC as a device deadline in
        # that VM's guest time (sandbox/net/vswitch.py), never straight into a running vCPU.
        self.network = Network(config.switches, self.events, self._frame_queued)
        # The physical disks and their I/O queues (sandbox/storage/io_queue.py). A request's
        # completion is a device deadline of its VM, like a timer.
        self.io_queues = make_io_queues(config.host, config.vms, self.events.publish, self.events.wants)
        self.host.disks = [PhysicalDisk(q.name, q.kind) for q in self.io_queues.values()]
        self.vms: dict[str, VirtualMachine] = {}
        for vm_config in config.vms:
            self.vms[vm_config.name] = VirtualMachine(vm_config, self)
        self.scheduler = Scheduler(self, make_policy(config.host.scheduler, config.source))

    def _publish_for_vm(self, kind: str, vm: str | None = None, **data: object) -> None:
        vm_obj = self.vms.get(vm) if vm else None
        t = vm_obj.clock.now() if vm_obj is not None else self.now_ns
        self.events.publish(kind, vm=vm, time_ns=t, **data)

    def _shootdown(self, vm_name: str) -> None:
        vm = self.vms.get(vm_name)
        if vm is not None:
            shootdown(vm)

    def _finished(self, vm_name: str) -> bool:
        vm = self.vms.get(vm_name)
        return vm is not None and vm.state in (VmState.POWERED_OFF, VmState.CRASHED, VmState.TIMED_OUT)

    def _frame_queued(self) -> None:
        """A NIC got a frame with a new deadline. In fast mode an idle pCPU thread may be
        asleep until its previous idea of the next event: wake it to look again."""
        runner = getattr(self.scheduler, "parallel", None)
        if runner is not None:
            with runner.lock:
                runner.lock.notify_all()

    def attach_disk(self, vm_config: VmConfig) -> DiskPort:
        """Give a VM's disk its place in the I/O queue of the physical disk it lives on."""
        return attach_vm_disk(self.io_queues, vm_config)

    def make_backend(self, vm: VirtualMachine, index: int):
        return self.engine.factory(vm, index)

    # --- life cycle -----------------------------------------------------------------------
    def power_on(self, name: str | None = None) -> None:
        for vm in self.vms.values():
            if name is None or vm.name == name:
                self.scheduler.admit(vm)            # CPU admission control (reservations)
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
            self.memory_manager.tick(self.now_ns)       # page sharing and reclamation

    def timeout_all(self, reason: str) -> None:
        for vm in self.active_vms:
            vm.stop(VmState.TIMED_OUT, reason, None)

    def close(self) -> None:
        for vm in self.vms.values():
            vm.close()
        self.memory_manager.close()
        self.network.close()


__all__ = ["Hypervisor", "SandboxError"]
