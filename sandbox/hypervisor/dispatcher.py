"""The one place an I/O or MMIO exit is routed.

Ports the hypervisor itself owns (the firmware trap, the hypercall port) come first;
everything else goes over the VM's port bus to a device model, which sees only an
offset. The return value tells the backend whether to stop running the vCPU after
this instruction: a device just raised an interrupt the vCPU can take, or the VM
must power off or reset.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sandbox.firmware.rom import TRAP_PORT
from sandbox.hypervisor.hypercalls import HYPERCALL_PORT, hypercall

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.vm.exits import IoExit, MmioExit
    from sandbox.vm.machine import VirtualMachine

PortHandler = Callable[["VirtualMachine", "IoExit", "VCpuBackend"], None]


def _firmware_trap(vm: "VirtualMachine", exit: "IoExit", vcpu: "VCpuBackend") -> None:
    if exit.write:
        vm.firmware.trap(vcpu)
    else:
        exit.value = 0xFF


def _hypercall(vm: "VirtualMachine", exit: "IoExit", vcpu: "VCpuBackend") -> None:
    if exit.write:
        hypercall(vm, vcpu)
    else:
        exit.value = 0x53425831 & ((1 << (8 * exit.size)) - 1)   # 'SBX1': the port exists


# Ports served by the hypervisor, not by a device model (one line each in docs/).
HYPERVISOR_PORTS: dict[int, PortHandler] = {
    TRAP_PORT: _firmware_trap,        # BIOS services (see sandbox/firmware/rom.py)
    HYPERCALL_PORT: _hypercall,       # paravirtual hypercalls (docs/hypercalls.md)
}


def dispatch_io(vm: "VirtualMachine", exit: "IoExit", vcpu: "VCpuBackend") -> bool:
    handler = HYPERVISOR_PORTS.get(exit.port)
    if handler is not None:
        handler(vm, exit, vcpu)
        kind = "exit.bios" if exit.port == TRAP_PORT else "exit.hypercall"
    else:
        if exit.write:
            vm.io_bus.write(exit.port, exit.size, exit.value)
        else:
            exit.value = vm.io_bus.read(exit.port, exit.size)
        kind = "exit.io"
        if vm.traced(kind):
            vm.publish(kind, port=exit.port, size=exit.size, write=exit.write, value=exit.value)
        if vm.deadline_moved(vm.io_bus.last):
            vm.count_exit(kind)
            return True
    vm.count_exit(kind)
    return vm.needs_attention(vcpu)


def dispatch_mmio(vm: "VirtualMachine", exit: "MmioExit", vcpu: "VCpuBackend") -> bool:
    if exit.write:
        vm.mmio_bus.write(exit.addr, exit.size, exit.value)
    else:
        exit.value = vm.mmio_bus.read(exit.addr, exit.size)
    vm.count_exit("exit.mmio")
    if vm.traced("exit.mmio"):
        vm.publish("exit.mmio", addr=exit.addr, size=exit.size, write=exit.write, value=exit.value)
    return vm.deadline_moved(vm.mmio_bus.last) or vm.needs_attention(vcpu)
