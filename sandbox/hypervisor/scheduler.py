"""The vCPU scheduler: which vCPU runs on which physical CPU, for how long.

The mechanism lives here; the decision is a *policy* (``policies.py``), a small
plug-in a student can write. Each round lasts one quantum of guest time: every
physical CPU asks the policy for a runnable vCPU and runs it until the quantum ends,
the vCPU halts, or its VM stops. A vCPU that is runnable but not chosen accumulates
ready time (esxtop's %RDY). When no vCPU is runnable, guest time jumps to the next
timer deadline, so an idle host costs nothing.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.hypervisor.policies import RoundRobin, SchedulingPolicy
from sandbox.vm.vcpu import VCpu, VCpuState

if TYPE_CHECKING:
    from sandbox.host.cpu import PhysicalCPU
    from sandbox.hypervisor.hypervisor import Hypervisor
    from sandbox.vm.machine import VirtualMachine


class Scheduler:
    def __init__(self, hv: "Hypervisor", policy: SchedulingPolicy | None = None) -> None:
        self.hv = hv
        self.policy = policy or RoundRobin()
        self.rounds = 0

    def round(self, active: list["VirtualMachine"], until_ns: int | None) -> bool:
        """One scheduling round. False when nothing can ever run again."""
        hv = self.hv
        runnable = [c for vm in active for c in vm.vcpus if c.state == VCpuState.RUNNABLE]
        if not runnable:
            return self._idle(active, until_ns)
        start = hv.now_ns
        end = start + hv.quantum_ns
        if until_ns is not None:
            end = min(end, until_ns)
        chosen: list[VCpu] = []
        for pcpu in hv.host.cpus:
            candidates = [c for c in runnable if c not in chosen]
            if not candidates:
                break
            vcpu = self.policy.pick(pcpu.index, candidates, start)
            if vcpu is None:
                continue
            chosen.append(vcpu)
            self._run_on(pcpu, vcpu, start, end)
        for vcpu in runnable:
            if vcpu not in chosen:
                vcpu.stats.ready_ns += end - start
        hv.now_ns = end
        for vm in active:
            vm.clock.set(end)
            if vm.active:
                vm.advance_devices(end)
        self.rounds += 1
        return True

    def _run_on(self, pcpu: "PhysicalCPU", vcpu: VCpu, start: int, end: int) -> None:
        hv = self.hv
        vm = hv.vms[vcpu.vm_name]
        vm.clock.set(start)
        pcpu.current = vcpu.name
        if hv.events.wants("sched.switch"):
            hv.events.publish("sched.switch", vm=vm.name, time_ns=start, pcpu=pcpu.index,
                              vcpu=vcpu.index, reason="quantum")
        vm.run_vcpu(vcpu, end)
        ran = max(0, vm.clock.now() - start)
        pcpu.busy_ns += ran
        vcpu.stats.run_ns += ran
        self.policy.account(vcpu, ran, end)
        pcpu.current = None

    def _idle(self, active: list["VirtualMachine"], until_ns: int | None) -> bool:
        hv = self.hv
        deadlines = [d for vm in active if (d := vm.next_deadline()) is not None]
        if not deadlines:
            return False
        nxt = max(min(deadlines), hv.now_ns + 1)
        if until_ns is not None:
            nxt = min(nxt, until_ns)
        hv.now_ns = nxt
        for vm in active:
            vm.clock.set(nxt)
            vm.advance_devices(nxt)
        return True
