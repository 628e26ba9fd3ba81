"""SMP guests: starting application processors (APs) and waking halted vCPUs.

A VM's vCPUs share its memory (each is its own engine instance over the same guest
RAM). At power-on only vCPU 0, the bootstrap processor (BSP), runs; the others stay
CREATED. A real PC starts them with INIT and STARTUP inter-processor interrupts
through the local APIC, after which each AP begins in real mode at a page-aligned
address. The sandbox has no APIC, so it offers an honest *paravirtual* shortcut: a
hypercall that starts vCPU n directly in 32-bit flat protected mode at a given EIP
and ESP, with the GDT the caller already uses. A second hypercall wakes a halted vCPU
(a paravirtual IPI without a vector): APs receive no device interrupts, so an idle AP
sleeps in ``hlt`` until another vCPU kicks it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.base import FlatProtectedMode
from sandbox.vm.vcpu import VCpuState

if TYPE_CHECKING:
    from sandbox.vm.machine import VirtualMachine

ERROR = 0xFFFFFFFF


def hypercall_start_vcpu(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    """EBX = vCPU index, ECX = EIP, ESI = ESP, EDI = guest-physical address of a 6-byte
    GDT pseudo-descriptor (the operand of ``lgdt``). The AP gets the caller's CS and DS
    selectors, paging off, interrupts off, and its own index in EAX."""
    n = regs["ebx"]
    if not 1 <= n < len(vm.vcpus) or vm.vcpus[n].state != VCpuState.CREATED:
        return {"eax": ERROR}
    raw = vm.memory.read(regs["edi"], 6)
    gdt = FlatProtectedMode(gdt_base=int.from_bytes(raw[2:6], "little"),
                            gdt_limit=int.from_bytes(raw[0:2], "little"), code=regs["cs"], data=regs["ds"])
    ap = vm.vcpus[n]
    ap.backend.enter_flat_protected_mode(gdt, regs["ecx"])
    ap.backend.set_regs(esp=regs["esi"], eax=n)
    ap.state = VCpuState.RUNNABLE
    vm.publish("sched.vcpu_start", vcpu=n, eip=regs["ecx"], esp=regs["esi"])
    return {"eax": 0}


def hypercall_kick_vcpu(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    """EBX = vCPU index. A halted vCPU becomes runnable and continues after its ``hlt``.
    EAX = 0 if it was halted, 1 if it was not, -1 if there is no such (started) vCPU."""
    n = regs["ebx"]
    if not 0 <= n < len(vm.vcpus) or vm.vcpus[n].state in (VCpuState.CREATED, VCpuState.DONE):
        return {"eax": ERROR}
    vcpu = vm.vcpus[n]
    if vcpu.state != VCpuState.HALTED:
        return {"eax": 1}
    vcpu.state = VCpuState.RUNNABLE
    vm.publish("sched.wake", vcpu=n, reason="kick")
    return {"eax": 0}
