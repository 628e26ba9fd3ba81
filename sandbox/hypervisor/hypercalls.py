"""The paravirtual hypercall port: how the sandbox's own guest drivers call the hypervisor.

ABI (documented for guest authors in docs/hypercalls.md): put the call number in EAX
and arguments in EBX, ECX, ESI, EDI, then ``out dx, eax`` with DX = 0x0D00. The result
comes back in EAX (and EDX for 64-bit values); an unknown call returns EAX = -1.
A read of the port returns 'SBX1', so a guest can detect the hypervisor.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sandbox.hypervisor import balloon, smp

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.vm.machine import VirtualMachine

HYPERCALL_PORT = 0x0D00
ABI_VERSION = 1
ERROR = 0xFFFFFFFF


@dataclass(frozen=True)
class Hypercall:
    number: int
    name: str
    description: str
    handler: Callable[["VirtualMachine", dict[str, int]], dict[str, int]]


HYPERCALLS: dict[int, Hypercall] = {}


def _register(number: int, name: str, description: str):
    def wrap(fn):
        HYPERCALLS[number] = Hypercall(number, name, description, fn)
        return fn
    return wrap


@_register(0, "version", "Returns the hypercall ABI version in EAX.")
def _version(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    return {"eax": ABI_VERSION}


@_register(1, "log", "Writes ECX bytes of text at guest-physical EBX to the hypervisor log.")
def _log(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    length = min(regs["ecx"], 4096)
    text = vm.memory.read(regs["ebx"], length).decode("latin-1")
    vm.log(text)
    return {"eax": length}


@_register(2, "time", "Returns guest time in nanoseconds: EAX low 32 bits, EDX high.")
def _time(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    now = vm.clock_ns()
    return {"eax": now & 0xFFFFFFFF, "edx": now >> 32}


@_register(3, "memory_size", "Returns the VM's RAM size in KiB in EAX.")
def _memory_size(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    return {"eax": vm.memory.size >> 10}


# Ballooning (sandbox/hypervisor/balloon.py): 0x10-0x12.
_register(0x10, "balloon_target", "Returns the pages the balloon should hold in EAX, the pages it "
          "holds in EDX.")(balloon.hypercall_target)
_register(0x11, "balloon_inflate", "Gives the hypervisor ECX guest pages, u32 frame numbers at "
          "guest-physical EBX; EAX = how many it took.")(balloon.hypercall_inflate)
_register(0x12, "balloon_deflate", "Takes back ECX pages from the balloon (frame numbers at EBX); "
          "EAX = how many were returned.")(balloon.hypercall_deflate)

# SMP guests (sandbox/hypervisor/smp.py): 0x20-0x21.
_register(0x20, "start_vcpu", "Starts vCPU EBX in 32-bit flat protected mode at EIP = ECX, ESP = ESI, "
          "with the GDT whose lgdt operand is at guest-physical EDI and the caller's CS/DS; it gets its "
          "index in EAX. EAX = 0, or -1.")(smp.hypercall_start_vcpu)
_register(0x21, "kick_vcpu", "Wakes vCPU EBX from hlt (a paravirtual IPI). EAX = 0 (woken), 1 (was not "
          "halted) or -1.")(smp.hypercall_kick_vcpu)


def hypercall(vm: "VirtualMachine", vcpu: "VCpuBackend") -> None:
    regs = vcpu.get_regs()
    call = HYPERCALLS.get(regs["eax"])
    vm.publish("exit.hypercall", number=regs["eax"], name=call.name if call else "unknown")
    result = call.handler(vm, regs) if call else {"eax": ERROR}
    vcpu.set_regs(**result)
