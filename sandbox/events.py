"""Typed events: the only way the GUI, lessons, labs and traces learn what happened.

Every event carries the guest clock (``time_ns``, virtual nanoseconds, deterministic
in the default mode), the layer of the seed diagram it belongs to, and the VM it
concerns (``None`` for host-wide events). Consumers subscribe to an ``EventBus``;
the hypervisor publishes. Nothing here knows about Qt.
"""
from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable


class Layer(str, enum.Enum):
    HARDWARE = "hardware"      # physical host: CPUs, RAM frames, disks, NICs
    HYPERVISOR = "hypervisor"  # scheduler, memory manager, device models, switch
    VM = "vm"                  # vCPUs, guest memory, virtual devices, the guest


@dataclass(frozen=True)
class EventKind:
    name: str
    layer: Layer
    description: str  # one sentence a teacher can read aloud


# The table of event kinds. Publishing an unknown kind is a programming error.
EVENT_KINDS: dict[str, EventKind] = {}


def _kind(name: str, layer: Layer, description: str) -> None:
    EVENT_KINDS[name] = EventKind(name, layer, description)


# Power-on workflow, in order (the seed's example workflow).
_kind("vm.created", Layer.HYPERVISOR, "The hypervisor validated the VM's configuration and created it.")
_kind("power.allocate_vcpus", Layer.HYPERVISOR, "The hypervisor created the VM's virtual CPUs and queued them for the scheduler.")
_kind("power.allocate_ram", Layer.HYPERVISOR, "The memory manager set up the VM's guest-physical memory, backed by host RAM frames on first touch.")
_kind("power.open_disk", Layer.HYPERVISOR, "The virtual disk, a file on the host, was opened and attached to the VM's disk controller.")
_kind("power.firmware_boot_read", Layer.VM, "The virtual firmware read the boot sector (or loaded the kernel) into guest RAM.")
_kind("power.guest_start", Layer.VM, "The vCPU started executing guest code.")
_kind("power.network_attached", Layer.HYPERVISOR, "The VM's virtual NIC was plugged into a port of the virtual switch.")
_kind("power.running", Layer.VM, "The VM is running: the scheduler gives its vCPUs time on physical CPUs.")
# Life cycle.
_kind("vm.paused", Layer.HYPERVISOR, "The VM was paused: its vCPUs are no longer scheduled.")
_kind("vm.resumed", Layer.HYPERVISOR, "The VM was resumed.")
_kind("vm.reset", Layer.HYPERVISOR, "The VM was reset: its CPUs restart in real mode at the firmware.")
_kind("vm.stopped", Layer.HYPERVISOR, "The VM stopped: powered off, crashed or timed out (see reason).")
# vCPU exits and interrupts.
_kind("exit.io", Layer.HYPERVISOR, "The guest executed IN/OUT: the vCPU exited to the hypervisor, which forwarded it to a device model.")
_kind("exit.mmio", Layer.HYPERVISOR, "The guest touched device memory: the vCPU exited and a device model served the access.")
_kind("exit.hlt", Layer.HYPERVISOR, "The guest executed HLT: the vCPU blocks until its next interrupt.")
_kind("exit.hypercall", Layer.HYPERVISOR, "The guest called the hypervisor directly through the paravirtual hypercall port.")
_kind("exit.bios", Layer.HYPERVISOR, "A BIOS service call trapped into the virtual firmware.")
_kind("io.unknown_port", Layer.HYPERVISOR, "The guest used an I/O port no device claims: reads give 0xFF, writes are ignored.")
_kind("io.virtio_error", Layer.HYPERVISOR, "A virtio driver broke the virtqueue rules: the device stops and asks for a reset.")
_kind("irq.raise", Layer.HYPERVISOR, "A device raised an interrupt line on the virtual interrupt controller.")
_kind("irq.deliver", Layer.VM, "An interrupt or exception was delivered to the guest through its IVT/IDT.")
_kind("cpu.fault", Layer.VM, "The guest caused a CPU exception.")
_kind("cpu.double_fault", Layer.VM, "An exception occurred while delivering another: the CPU raised a double fault.")
_kind("cpu.triple_fault", Layer.VM, "An exception occurred while delivering a double fault: a real PC resets; the VM stops.")
# Scheduling.
_kind("sched.switch", Layer.HYPERVISOR, "The scheduler put a vCPU on a physical CPU (and took another off).")
_kind("sched.block", Layer.HYPERVISOR, "A vCPU halted and left the run queue until its next interrupt.")
_kind("sched.wake", Layer.HYPERVISOR, "An interrupt woke a halted vCPU: it is runnable again.")
_kind("sched.policy_error", Layer.HYPERVISOR, "The scheduling policy failed; the hypervisor fell back to round robin.")
_kind("sched.throttle", Layer.HYPERVISOR, "A runnable vCPU was held back (its VM reached its limit or cap, or it was co-stopped to let its SMP siblings catch up), or released again.")
_kind("sched.admit", Layer.HYPERVISOR, "Admission control checked a VM's CPU reservation at power-on and admitted or refused it.")
_kind("sched.vcpu_start", Layer.VM, "The guest started another of its vCPUs (an application processor) through the start-up hypercall.")
# Memory.
_kind("mem.alloc", Layer.HARDWARE, "A guest frame was touched for the first time and got a host RAM frame.")
_kind("mem.share", Layer.HYPERVISOR, "Identical pages were merged into one read-only host frame.")
_kind("mem.cow", Layer.HYPERVISOR, "The guest wrote a shared page: copy-on-write gave it a private copy.")
_kind("mem.isolation", Layer.HYPERVISOR, "The guest touched guest-physical memory it does not have: open bus, contained.")
_kind("mem.balloon", Layer.HYPERVISOR, "The balloon driver gave pages to, or took pages back from, the hypervisor.")
_kind("mem.swap_out", Layer.HYPERVISOR, "The hypervisor swapped a guest page to the host swap file.")
_kind("mem.swap_in", Layer.HYPERVISOR, "A swapped-out guest page was touched and read back from the swap file.")
_kind("mem.release", Layer.HYPERVISOR, "The host needed memory: a page of a powered-off VM was freed.")
_kind("mem.scan", Layer.HYPERVISOR, "The page-sharing scanner finished a full pass over every VM's memory.")
_kind("mem.state", Layer.HYPERVISOR, "Host free memory crossed a threshold: the host memory state changed (high, clear, soft, hard, low).")
_kind("mem.violation", Layer.HYPERVISOR, "The isolation checker found a broken memory invariant.")
# Devices.
_kind("serial.tx", Layer.VM, "The guest wrote a byte to its serial port (COM1).")
_kind("serial.rx", Layer.VM, "A byte of input was placed in the guest's serial port.")
_kind("disk.read", Layer.HYPERVISOR, "The virtual disk controller read sectors from the image file.")
_kind("disk.write", Layer.HYPERVISOR, "The virtual disk controller wrote sectors to the image file.")
_kind("disk.flush", Layer.HYPERVISOR, "The guest flushed the disk cache: writes are on stable storage.")
_kind("disk.queued", Layer.HYPERVISOR, "A VM's disk request (VM, LBA, size) joined the I/O queue of the physical disk its disk lives on.")
_kind("disk.started", Layer.HARDWARE, "The physical disk started serving a request: the I/O scheduler chose it by shares and rate limits.")
_kind("disk.done", Layer.HARDWARE, "The physical disk finished a request; the VM's disk controller completes it and interrupts the guest.")
_kind("net.frame", Layer.HYPERVISOR, "The virtual switch handled an Ethernet frame.")


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    time_ns: int
    vm: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    @property
    def layer(self) -> Layer:
        return EVENT_KINDS[self.kind].layer

    def to_json(self) -> str:
        return json.dumps({"seq": self.seq, "time_ns": self.time_ns, "kind": self.kind,
                           "layer": self.layer.value, "vm": self.vm, "data": self.data},
                          sort_keys=True, default=str)


Subscriber = Callable[[Event], None]


class EventBus:
    """Publish/subscribe. Subscribers run synchronously in the publishing thread;
    a GUI subscriber must only enqueue (see gui/facade.py)."""

    def __init__(self) -> None:
        self._subs: list[tuple[frozenset[str] | None, Subscriber]] = []
        self._seq = 0
        self._all = False
        self._wanted: frozenset[str] = frozenset()
        self._lock = threading.Lock()
        self.clock: Callable[[], int] = lambda: 0

    def subscribe(self, fn: Subscriber, kinds: Iterable[str] | None = None) -> Callable[[], None]:
        entry = (frozenset(kinds) if kinds is not None else None, fn)
        self._subs.append(entry)
        self._recompute()

        def unsubscribe() -> None:
            self._subs.remove(entry)
            self._recompute()
        return unsubscribe

    def _recompute(self) -> None:
        self._all = any(k is None for k, _ in self._subs)
        self._wanted = frozenset().union(*(k for k, _ in self._subs if k is not None))

    def wants(self, kind: str) -> bool:
        """Does anyone listen to ``kind``? Publishers of very frequent events (every
        I/O exit, every interrupt) check this first so an unwatched machine runs fast."""
        return self._all or kind in self._wanted

    def publish(self, kind: str, vm: str | None = None, time_ns: int | None = None, **data: Any) -> Event:
        if kind not in EVENT_KINDS:
            raise KeyError(f"unknown event kind {kind!r}")
        with self._lock:
            self._seq += 1
            ev = Event(kind, self.clock() if time_ns is None else time_ns, vm, data, self._seq)
        for kinds, fn in list(self._subs):
            if kinds is None or kind in kinds:
                fn(ev)
        return ev


class EventRecorder:
    """Collects events (optionally only some kinds) for tests, lessons and traces."""

    def __init__(self, bus: EventBus, kinds: Iterable[str] | None = None) -> None:
        self.events: list[Event] = []
        self._unsub = bus.subscribe(self.events.append, kinds)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    def of(self, kind: str, vm: str | None = None) -> list[Event]:
        return [e for e in self.events if e.kind == kind and (vm is None or e.vm == vm)]

    def close(self) -> None:
        self._unsub()
