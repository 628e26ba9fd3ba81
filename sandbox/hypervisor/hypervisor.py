"""The hypervisor: owns the host, the VMs, the memory manager and the scheduler loop.

This is the middle layer of the seed diagram. ``run`` is the scheduler's main loop:
in each round every physical CPU runs one runnable vCPU for a quantum of guest time;
when every vCPU is halted, guest time jumps to the next timer deadline (an idle host
costs nothing).
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
from sandbox.vm.machine import VirtualMachine, VmState
from sandbox.vm.vcpu import VCpu, VCpuState


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
        self._rr = 0
        self.rounds = 0

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
            if not self._round(active, until_ns):
                return "idle"

    def _round(self, active: list[VirtualMachine], until_ns: int | None) -> bool:
        """One scheduling round. False when nothing can ever run again."""
        runnable = [c for vm in active for c in vm.vcpus if c.state == VCpuState.RUNNABLE]
        if not runnable:
            return self._idle(active, until_ns)
        start = self.now_ns
        end = start + self.quantum_ns
        if until_ns is not None:
            end = min(end, until_ns)
        pcpus = self.host.cpus
        n = len(runnable)
        chosen = [runnable[(self._rr + i) % n] for i in range(min(len(pcpus), n))]
        self._rr = (self._rr + len(chosen)) % max(1, n)
        for pcpu, vcpu in zip(pcpus, chosen):
            self._run_on(pcpu, vcpu, start, end)
        for vcpu in runnable:
            if vcpu not in chosen:
                vcpu.stats.ready_ns += end - start
        self.now_ns = end
        for vm in active:
            vm.clock.set(end)
            if vm.active:
                vm.advance_devices(end)
        self.rounds += 1
        return True

    def _run_on(self, pcpu, vcpu: VCpu, start: int, end: int) -> None:
        vm = self.vms[vcpu.vm_name]
        vm.clock.set(start)
        pcpu.current = vcpu.name
        if self.events.wants("sched.switch"):
            self.events.publish("sched.switch", vm=vm.name, time_ns=start, pcpu=pcpu.index,
                                vcpu=vcpu.index, reason="quantum")
        vm.run_vcpu(vcpu, end)
        ran = max(0, vm.clock.now() - start)
        pcpu.busy_ns += ran
        vcpu.stats.run_ns += ran
        pcpu.current = None

    def _idle(self, active: list[VirtualMachine], until_ns: int | None) -> bool:
        deadlines = [d for vm in active if (d := vm.next_deadline()) is not None]
        if not deadlines:
            return False
        nxt = max(min(deadlines), self.now_ns + 1)
        if until_ns is not None:
            nxt = min(nxt, until_ns)
        self.now_ns = nxt
        for vm in active:
            vm.clock.set(nxt)
            vm.advance_devices(nxt)
        return True

    def timeout_all(self, reason: str) -> None:
        for vm in self.active_vms:
            vm.stop(VmState.TIMED_OUT, reason, None)

    def close(self) -> None:
        for vm in self.vms.values():
            vm.close()


__all__ = ["Hypervisor", "SandboxError"]
