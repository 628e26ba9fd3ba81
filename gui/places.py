"""Where on the diagram each event happened, and which flows it animates (tables).

``PLACES[kind](event)`` gives the keys of the diagram elements to highlight (see
``layouts.py``); ``FLOWS[kind](event)`` gives an arrow (from, to, label) to animate.
A kind missing from the tables is placed on its VM, or on its layer's band. A key
the current layout does not show falls back along ``FALLBACK`` and then to its
parent (``vm.tinyos.nic`` -> ``vm.tinyos``).
"""
from __future__ import annotations

from typing import Callable

from sandbox.events import EVENT_KINDS, Event

Keys = tuple[str, ...]
Flow = tuple[str, str, str]
LAYER_BANDS = {"vm": "band.vm", "hypervisor": "band.hypervisor", "hardware": "band.hardware"}


def _vm(e: Event, part: str = "") -> str:
    return f"vm.{e.vm}.{part}" if part else f"vm.{e.vm}"


PLACES: dict[str, Callable[[Event], Keys]] = {
    "vm.created": lambda e: (_vm(e),),
    "power.allocate_vcpus": lambda e: (_vm(e, "vcpus"), "hv.scheduler"),
    "power.allocate_ram": lambda e: (_vm(e, "ram"), "hv.memory"),
    "power.open_disk": lambda e: (_vm(e, "disk"), "hw.disks"),
    "power.firmware_boot_read": lambda e: (_vm(e, "ram"), _vm(e, "disk"), "hv.firmware"),
    "power.guest_start": lambda e: (_vm(e, "vcpus"),),
    "power.network_attached": lambda e: (_vm(e, "nic"), "hv.switch"),
    "power.running": lambda e: (_vm(e, "os"), "hv.scheduler"),
    "vm.paused": lambda e: (_vm(e), "hv.scheduler"),
    "vm.resumed": lambda e: (_vm(e), "hv.scheduler"),
    "vm.reset": lambda e: (_vm(e, "vcpus"), "hv.firmware"),
    "vm.stopped": lambda e: (_vm(e, "os"),),
    "exit.io": lambda e: (_vm(e, "vcpus"), "hv.devices"),
    "exit.mmio": lambda e: (_vm(e, "vcpus"), "hv.devices"),
    "exit.bios": lambda e: (_vm(e, "vcpus"), "hv.firmware"),
    "exit.hlt": lambda e: (_vm(e, "vcpus"), "hv.scheduler"),
    "exit.hypercall": lambda e: (_vm(e, "vcpus"),),
    "io.unknown_port": lambda e: ("hv.devices",),
    "irq.raise": lambda e: ("hv.devices",),
    "irq.deliver": lambda e: (_vm(e, "vcpus"),),
    "cpu.fault": lambda e: (_vm(e, "vcpus"),),
    "cpu.double_fault": lambda e: (_vm(e, "vcpus"),),
    "cpu.triple_fault": lambda e: (_vm(e, "vcpus"), _vm(e, "os")),
    "sched.switch": lambda e: (f"hw.pcpu.{e.data.get('pcpu', 0)}", "hv.scheduler"),
    "sched.block": lambda e: (_vm(e, "vcpus"), "hv.scheduler"),
    "sched.wake": lambda e: (_vm(e, "vcpus"), "hv.scheduler"),
    "sched.policy_error": lambda e: ("hv.scheduler",),
    "mem.alloc": lambda e: ("hw.ram", _vm(e, "ram")),
    "mem.share": lambda e: ("hv.memory", "hw.ram"),
    "mem.cow": lambda e: ("hv.memory", _vm(e, "ram")),
    "mem.isolation": lambda e: ("hv.memory", _vm(e, "ram")),
    "mem.balloon": lambda e: ("hv.memory", _vm(e, "ram")),
    "mem.swap_out": lambda e: ("hv.memory", "hw.disks"),
    "mem.swap_in": lambda e: ("hv.memory", "hw.disks"),
    "serial.tx": lambda e: (_vm(e, "os"), "hv.devices"),
    "serial.rx": lambda e: (_vm(e, "os"), "hv.devices"),
    "disk.read": lambda e: ("hw.disks", _vm(e, "disk")),
    "disk.write": lambda e: ("hw.disks", _vm(e, "disk")),
    "disk.flush": lambda e: ("hw.disks",),
    "net.frame": lambda e: ("hv.switch", "hw.nics"),
}


def _boot_label(e: Event) -> str:
    return "kernel -> RAM" if "kernel" in e.data else "boot sector -> RAM"


FLOWS: dict[str, Callable[[Event], Flow]] = {
    "power.allocate_vcpus": lambda e: ("hv.scheduler", _vm(e, "vcpus"), "create vCPUs"),
    "power.allocate_ram": lambda e: ("hv.memory", _vm(e, "ram"), "set up RAM"),
    "power.open_disk": lambda e: ("hw.disks", _vm(e, "disk"), "open image file"),
    "power.firmware_boot_read": lambda e: ("hw.disks", _vm(e, "ram"), _boot_label(e)),
    "power.network_attached": lambda e: ("hv.switch", _vm(e, "nic"), "plug into switch"),
    "sched.switch": lambda e: (_vm(e, "vcpus"), f"hw.pcpu.{e.data.get('pcpu', 0)}", "scheduled"),
    "mem.alloc": lambda e: ("hw.ram", _vm(e, "ram"), "frame"),
    "mem.cow": lambda e: ("hv.memory", _vm(e, "ram"), "private copy"),
    "mem.swap_out": lambda e: (_vm(e, "ram"), "hw.disks", "swap out"),
    "mem.swap_in": lambda e: ("hw.disks", _vm(e, "ram"), "swap in"),
    "exit.io": lambda e: (_vm(e, "vcpus"), "hv.devices", f"port {e.data.get('port', 0):#x}"),
    "exit.bios": lambda e: (_vm(e, "vcpus"), "hv.firmware", "BIOS call"),
    "irq.deliver": lambda e: ("hv.devices", _vm(e, "vcpus"), "interrupt"),
    "disk.read": lambda e: ("hw.disks", _vm(e, "disk"), "read"),
    "disk.write": lambda e: (_vm(e, "disk"), "hw.disks", "write"),
}

def _vm_part(part: str) -> Callable[[str], Keys]:
    return lambda what: (f"vm.{what.partition('/')[0]}.{part}",)


def _host(what: str) -> Keys:
    if what.startswith("cpu") and what[3:].isdigit():
        return (f"hw.pcpu.{what[3:]}",)
    return ({"ram": "hw.ram", "disk": "hw.disks", "nic": "hw.nics"}.get(what, "band.hardware"),)


_HV_PARTS = {"scheduler": "hv.scheduler", "memory_manager": "hv.memory", "dispatcher": "hv.devices",
             "firmware": "hv.firmware", "devices": "hv.devices", "switch": "hv.switch"}

# What a lesson step may ask to highlight ("kind:what", see lessons/engine/format.py HIGHLIGHTS).
HIGHLIGHT_PLACES: dict[str, Callable[[str], Keys]] = {
    "layer": lambda what: (LAYER_BANDS.get(what, "band.vm"),),
    "vm": lambda what: (f"vm.{what}",),
    "vcpu": _vm_part("vcpus"),
    "device": lambda what: ("hv.devices", f"vm.{what.partition('/')[0]}"),
    "host": _host,
    "hypervisor": lambda what: (_HV_PARTS.get(what, "band.hypervisor"),),
}


def highlight_places(names: list[str] | tuple[str, ...]) -> Keys:
    """Diagram keys for a lesson's highlight names, e.g. ["layer:vm", "device:hello/com1"]."""
    keys: list[str] = []
    for name in names:
        kind, _, what = name.partition(":")
        where = HIGHLIGHT_PLACES.get(kind)
        if where is not None:
            keys.extend(where(what))
    return tuple(keys)


# Where a key goes when the current layout does not show it.
FALLBACK = {"hv.firmware": "hv.devices", "hv.switch": "hw.nics"}


def places(e: Event) -> Keys:
    where = PLACES.get(e.kind)
    if where is not None:
        return where(e)
    if e.vm:
        return (_vm(e),)
    return (LAYER_BANDS[EVENT_KINDS[e.kind].layer.value],)


def flow(e: Event) -> Flow | None:
    make = FLOWS.get(e.kind)
    return make(e) if make is not None else None


def resolve(key: str, shown: set[str] | dict) -> str | None:
    """The nearest element of the diagram that stands for ``key``."""
    while key:
        if key in shown:
            return key
        if key in FALLBACK:
            key = FALLBACK[key]
            continue
        key = key.rpartition(".")[0]
        if key.count(".") == 0 and key.startswith("vm"):
            return None
    return None
