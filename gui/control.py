"""VM controls the GUI needs that ``sandbox.api`` does not offer yet (an adapter).

Each function here is small and uses only the machine's public objects; each one is
a candidate for the sandbox's own API (see the report of the GUI task):

* ``pause_vm`` / ``resume_vm`` / ``restart_vm``: now ``VirtualMachine.pause()``,
  ``resume()`` and ``restart()``; kept here as the explorer's names for them.
* ``preempt``: make the vCPU that is running now give its physical CPU back right
  after the current instruction (what a debugger breakpoint needs).
* ``AddressHooks``: stop a vCPU *before* it executes the instruction at an address.

All of them must run in the machine's worker thread, between or inside scheduler
rounds, never in the GUI thread.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sandbox.errors import SandboxError
from sandbox.vm.vcpu import VCpuState

if TYPE_CHECKING:
    from sandbox.api import Machine
    from sandbox.vm.machine import VirtualMachine


class ControlError(SandboxError):
    """A VM control that does not apply to the VM in its current state."""


def pause_vm(vm: "VirtualMachine") -> None:
    vm.pause()


def resume_vm(vm: "VirtualMachine") -> None:
    vm.resume()


def restart_vm(vm: "VirtualMachine") -> None:
    """Reset: a running or paused VM reboots; a stopped one is powered on again."""
    vm.restart()


def running_vcpu(vm: "VirtualMachine"):
    for cpu in vm.vcpus:
        if cpu.state == VCpuState.RUNNING:
            return cpu
    return None


def preempt(vm: "VirtualMachine") -> bool:
    """The vCPU of ``vm`` running now stops after its current instruction and goes
    back to the run queue. False when none of its vCPUs is on a physical CPU."""
    cpu = running_vcpu(vm)
    if cpu is None:
        return False
    cpu.state = VCpuState.RUNNABLE        # run_vcpu's loop ends when it is not RUNNING
    cpu.backend.request_stop()
    return True


class AddressHooks:
    """Breakpoints on instruction addresses (linear), per vCPU, with Unicorn code hooks
    limited to the address itself: code elsewhere runs at full speed. ``on_hit(vm,
    vcpu_index, address)`` is called before the instruction executes; the vCPU is
    then preempted, so EIP is left on the breakpoint."""

    def __init__(self, machine: "Machine", on_hit: Callable[[str, int, int], None]) -> None:
        self.machine = machine
        self.on_hit = on_hit
        self._hooks: dict[tuple[str, int, int], int] = {}       # (vm, vcpu, addr) -> handle
        self._skip: set[tuple[str, int, int]] = set()

    @staticmethod
    def supported(vm: "VirtualMachine") -> bool:
        return all(hasattr(c.backend, "uc") for c in vm.vcpus)

    def arm(self, addresses: set[tuple[str | None, int]]) -> list[str]:
        """Install hooks for (vm or None for every VM, address); returns complaints."""
        from unicorn import UC_HOOK_CODE   # noqa: PLC0415 (only the Unicorn backend has it)
        wanted = set()
        problems = []
        for vm in self.machine.vms.values():
            for name, addr in addresses:
                if name not in (None, vm.name) or not vm.vcpus:
                    continue
                if not self.supported(vm):
                    problems.append(f"{vm.name}: address breakpoints need the unicorn backend")
                    continue
                wanted.update((vm.name, c.index, addr) for c in vm.vcpus)
        for key in list(self._hooks):
            if key not in wanted:
                self._cpu(key).backend.uc.hook_del(self._hooks.pop(key))
        for key in wanted - set(self._hooks):
            uc = self._cpu(key).backend.uc
            self._hooks[key] = uc.hook_add(UC_HOOK_CODE, self._hook(key), None, key[2], key[2])
        return problems

    def skip_once(self, vm: str, vcpu: int, addr: int) -> None:
        """Resuming from a breakpoint: let the instruction under it execute once."""
        if (vm, vcpu, addr) in self._hooks:
            self._skip.add((vm, vcpu, addr))

    def _cpu(self, key: tuple[str, int, int]):
        return self.machine.vms[key[0]].vcpus[key[1]]

    def _hook(self, key: tuple[str, int, int]):
        def hit(uc, address: int, size: int, _data) -> None:
            if key in self._skip:
                self._skip.discard(key)
                return
            cpu = self._cpu(key)
            cpu.state = VCpuState.RUNNABLE
            uc.emu_stop()
            self.on_hit(key[0], key[1], address)
        return hit
