"""TLB shootdown: make a VM's vCPUs forget cached guest-physical -> host translations.

The memory manager calls this when it takes a frame away from a VM, moves a page, or
makes it read-only while a vCPU of that VM may be running (inside a page fault, a
hypercall, a firmware or device access). Without it the vCPU could keep writing to a
frame that the pool has already handed to another VM. A real hypervisor does the same
with INVEPT/INVVPID and inter-processor interrupts to the other physical CPUs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.vm.machine import VirtualMachine


def shootdown(vm: "VirtualMachine") -> None:
    for vcpu in vm.vcpus:
        vcpu.backend.mappings_changed()
