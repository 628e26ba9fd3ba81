"""The contract between the hypervisor and an execution engine (Unicorn, KVM).

A backend runs one vCPU. It translates its engine's native exits into the records of
``sandbox.vm.exits`` and nothing more: I/O and MMIO go to ``VCpuHost.handle_io`` /
``handle_mmio`` (the one dispatcher), everything else ends ``run()``.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sandbox.vm.exits import Exit, IoExit, MmioExit
    from sandbox.vm.memory import GuestMemory

# Register names every backend understands in get_regs()/set_regs().
GPRS = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp")
SEGMENTS = ("cs", "ds", "es", "fs", "gs", "ss")
CONTROL = ("cr0", "cr2", "cr3", "cr4")
ALL_REGS = GPRS + ("eip", "eflags") + SEGMENTS + CONTROL

EFLAGS_CF = 1 << 0
EFLAGS_ZF = 1 << 6
EFLAGS_TF = 1 << 8
EFLAGS_IF = 1 << 9
EFLAGS_NT = 1 << 14
EFLAGS_RF = 1 << 16
EFLAGS_VM = 1 << 17
CR0_PE = 1 << 0
CR0_WP = 1 << 16
CR0_PG = 1 << 31


class VCpuHost(Protocol):
    """What a backend may call on the machine that owns it."""
    memory: "GuestMemory"
    vm_name: str

    def handle_io(self, exit: "IoExit", vcpu: "VCpuBackend") -> bool:
        """Serve an I/O exit (fill ``exit.value`` on reads). True: stop ``run()`` after
        this instruction (e.g. an interrupt became pending or the VM powered off)."""

    def handle_mmio(self, exit: "MmioExit", vcpu: "VCpuBackend") -> bool:
        ...

    def publish(self, kind: str, **data: Any) -> None:
        ...

    def traced(self, kind: str) -> bool:
        """Does anyone listen to ``kind``? (skip building frequent events otherwise)"""


@dataclass
class FlatProtectedMode:
    """What a Multiboot loader needs: a GDT already written to guest memory at
    ``gdt_base`` with a flat 4 GiB code (``code``) and data (``data``) selector."""
    gdt_base: int
    gdt_limit: int
    code: int
    data: int


class VCpuBackend(abc.ABC):
    """One virtual CPU on an engine. Created in real mode, stopped."""
    engine = "abstract"
    deterministic = False     # True: run() budgets are exact guest instruction counts

    def __init__(self, host: VCpuHost, index: int) -> None:
        self.host = host
        self.index = index
        self.retired = 0      # guest instructions retired so far (deterministic engines)

    @abc.abstractmethod
    def get_regs(self) -> dict[str, int]: ...

    @abc.abstractmethod
    def set_regs(self, **regs: int) -> None:
        """Set general registers, eip, eflags; in real mode also segment registers."""

    @abc.abstractmethod
    def set_real_mode(self, cs: int, ip: int) -> None:
        """Reset-like state: real mode, CS:IP as given, all other segments 0."""

    @abc.abstractmethod
    def enter_flat_protected_mode(self, pm: FlatProtectedMode, eip: int) -> None:
        """Switch to 32-bit protected mode, paging off, with the given flat GDT."""

    @abc.abstractmethod
    def run(self, budget: int | None, wall_timeout_us: int | None) -> "Exit":
        """Run guest code until an exit. ``budget``: guest instructions (deterministic
        engines); ``wall_timeout_us``: wall-clock slice (fast mode)."""

    def step(self) -> "Exit":
        """Execute exactly one guest instruction (the debugger's single step)."""
        raise NotImplementedError(f"the {self.engine} backend cannot single-step")

    def read_linear(self, linear: int, length: int) -> bytes:
        """Read guest memory at a linear address (through the guest's paging)."""
        raise NotImplementedError

    @abc.abstractmethod
    def can_take_interrupt(self) -> bool:
        """EFLAGS.IF is set (and no interrupt shadow): an external interrupt may be delivered."""

    @abc.abstractmethod
    def interrupt(self, vector: int) -> None:
        """Deliver external interrupt ``vector`` now, architecturally (IVT or IDT)."""

    @abc.abstractmethod
    def request_stop(self) -> None:
        """Thread-safe: make a running ``run()`` return ``StopExit`` soon."""

    def instructions(self) -> int:
        """Guest instructions retired so far, live (readable while ``run()`` is in progress)."""
        return self.retired

    def mappings_changed(self) -> None:
        """The memory manager changed gfn -> hfn mappings: drop cached translations."""

    def close(self) -> None:
        """Release engine resources."""
