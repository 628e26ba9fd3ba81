"""Breakpoints: stop the machine on an instruction address, an I/O port or an event kind.

A breakpoint is data (``Breakpoint``); ``BREAKPOINT_KINDS`` says how to read the
value the user typed and what the breakpoint means. ``BreakpointEngine`` arms them in
the worker thread: addresses with code hooks (``control.AddressHooks``), ports and
event kinds with event subscriptions, so a machine without breakpoints pays nothing.
When one hits, the vCPU is preempted after the instruction (or before it, for an
address) and the worker pauses the whole machine.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sandbox.errors import SandboxError
from sandbox.events import EVENT_KINDS, Event

from gui.control import AddressHooks, preempt

if TYPE_CHECKING:
    from sandbox.api import Machine


class BreakpointError(SandboxError):
    """A breakpoint the user typed that cannot be understood."""


def _number(text: str, what: str, limit: int) -> int:
    try:
        value = int(text.strip().replace("_", ""), 0)
    except ValueError:
        raise BreakpointError(f"{what} '{text}' is not a number (write 0x7c00 or 31744)") from None
    if not 0 <= value <= limit:
        raise BreakpointError(f"{what} {text} is out of range (0..{limit:#x})")
    return value


def _kind(text: str) -> str:
    kind = text.strip()
    if kind not in EVENT_KINDS:
        raise BreakpointError(f"unknown event kind '{kind}' (see the event log for the kinds)")
    return kind


@dataclass(frozen=True)
class BreakpointKind:
    parse: Callable[[str], int | str]
    show: Callable[[int | str], str]
    description: str


BREAKPOINT_KINDS: dict[str, BreakpointKind] = {
    "address": BreakpointKind(lambda t: _number(t, "address", 0xFFFFFFFF), lambda v: f"{v:#010x}",
                              "Stops a vCPU before it executes the instruction at this linear address."),
    "port": BreakpointKind(lambda t: _number(t, "port", 0xFFFF), lambda v: f"port {v:#06x}",
                           "Stops a vCPU right after it reads or writes this I/O port."),
    "event": BreakpointKind(_kind, str, "Stops the machine when an event of this kind is published."),
}


@dataclass(frozen=True)
class Breakpoint:
    kind: str
    value: int | str
    vm: str | None = None        # None: any VM

    @classmethod
    def parse(cls, kind: str, text: str, vm: str | None = None) -> "Breakpoint":
        if kind not in BREAKPOINT_KINDS:
            raise BreakpointError(f"unknown breakpoint kind '{kind}' (choose: {', '.join(BREAKPOINT_KINDS)})")
        return cls(kind, BREAKPOINT_KINDS[kind].parse(text), vm or None)

    def describe(self) -> str:
        return f"{BREAKPOINT_KINDS[self.kind].show(self.value)} in {self.vm or 'any VM'}"


@dataclass(frozen=True)
class Hit:
    breakpoint: Breakpoint
    vm: str | None
    detail: str


class BreakpointEngine:
    """Worker-thread side: arms the current set and reports the first hit."""

    def __init__(self, machine: "Machine") -> None:
        self.machine = machine
        self.breakpoints: list[Breakpoint] = []
        self.hit: Hit | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._addresses = AddressHooks(machine, self._address_hit)

    def set(self, breakpoints: list[Breakpoint]) -> list[str]:
        self.breakpoints = list(breakpoints)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        kinds = {b.value for b in self.breakpoints if b.kind == "event"}
        if any(b.kind == "port" for b in self.breakpoints):
            kinds.add("exit.io")
        if kinds:
            self._unsubscribe = self.machine.events.subscribe(self._on_event, kinds)
        return self.rearm()

    def rearm(self) -> list[str]:
        """(Re)install address hooks: also after a VM's vCPUs were created."""
        return self._addresses.arm({(b.vm, b.value) for b in self.breakpoints if b.kind == "address"})

    def take_hit(self) -> Hit | None:
        hit, self.hit = self.hit, None
        return hit

    def step_over(self, vm: str, vcpu: int, pc: int) -> None:
        self._addresses.skip_once(vm, vcpu, pc)

    def _record(self, bp: Breakpoint, vm: str | None, detail: str) -> None:
        if self.hit is None:
            self.hit = Hit(bp, vm, detail)

    def _address_hit(self, vm: str, vcpu: int, address: int) -> None:
        for bp in self.breakpoints:
            if bp.kind == "address" and bp.value == address and bp.vm in (None, vm):
                self._record(bp, vm, f"{vm}/vcpu{vcpu} stopped before the instruction at {address:#x}")
                return

    def _on_event(self, ev: Event) -> None:
        for bp in self.breakpoints:
            if bp.vm not in (None, ev.vm):
                continue
            if bp.kind == "event" and ev.kind == bp.value:
                detail = f"event {ev.kind} in {ev.vm or 'the host'} at {ev.time_ns / 1e6:.3f} ms"
            elif bp.kind == "port" and ev.kind == "exit.io" and ev.data.get("port") == bp.value:
                rw = "wrote" if ev.data.get("write") else "read"
                detail = f"{ev.vm} {rw} port {bp.value:#x} (value {ev.data.get('value', 0):#x})"
            else:
                continue
            if ev.vm in self.machine.vms:
                preempt(self.machine.vms[ev.vm])
            self._record(bp, ev.vm, detail)
            return
