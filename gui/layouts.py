"""The architecture diagram as data (Ripes' standard/extended layouts).

Each ``Element`` is one box of the diagram: its key (events find their place by it,
see ``places.py``), its layer, its title, which layouts show it, how tall it is and
what it says. A VM row is repeated for every VM (key ``vm.<name>.<row>``). To show a
new feature, add a row here; the view draws whatever the table holds.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gui.snapshot import Snapshot, VmView

BOTH = frozenset({"beginner", "advanced"})
ADVANCED = frozenset({"advanced"})

LAYOUTS = {
    "beginner": "The three layers and the main parts of each: enough to follow a VM from power-on to running.",
    "advanced": "Everything: CPU modes, exits, every device model, the firmware and the virtual switch.",
}

Lines = Callable[[Snapshot | None, VmView | None], list[str]]


@dataclass(frozen=True)
class Element:
    key: str
    title: str
    layer: str                      # vm, hypervisor or hardware
    layouts: frozenset[str]
    lines: Lines                    # the text inside the box
    kind: str = "text"              # text, chips (vCPUs / run queue), pcpus, ram, devices
    height: float = 44              # VM rows: height; host boxes: relative width
    description: str = ""           # tooltip: one sentence


def _vm_cpu_lines(s, vm):
    return [] if vm is None or vm.vcpus else ["not allocated yet"]


def _vm_ram_lines(s, vm):
    if vm is None:
        return []
    resident = vm.memory.get("resident", 0)
    extra = [f"{name} {vm.memory[name]}" for name in ("shared", "swapped", "ballooned") if vm.memory.get(name)]
    return [f"{vm.memory_mib} MiB, {resident} pages in host frames"] + ([", ".join(extra)] if extra else [])


def _vm_disk_lines(s, vm):
    if vm is None:
        return []
    if vm.disk:
        return [f"{Path(vm.disk).name}  ({vm.disk_format or 'image'})"]
    return [f"no disk; kernel {Path(vm.kernel).name}" if vm.kernel else "no disk"]


def _vm_nic_lines(s, vm):
    return [vm.nic if vm is not None and vm.nic else "none"]


def _vm_os_lines(s, vm):
    if vm is None:
        return []
    state = vm.state.replace("_", " ")
    if vm.exit_reason:
        state += f": {vm.exit_reason}"
    return [state[:70], vm.last_line or "(no output yet)"]


def _vm_exit_lines(s, vm):
    if vm is None or not vm.exits:
        return ["no exits yet"]
    top = sorted(vm.exits.items(), key=lambda kv: -kv[1])[:3]
    return ["  ".join(f"{k.removeprefix('exit.')} {n}" for k, n in top)]


def _vm_mode_lines(s, vm):
    if vm is None or not vm.vcpus:
        return ["-"]
    insns = sum(c.instructions for c in vm.vcpus)
    return [f"{insns:,} instructions, {sum(c.interrupts for c in vm.vcpus):,} interrupts"]


VM_ROWS: tuple[Element, ...] = (
    Element("vcpus", "vCPUs", "vm", BOTH, _vm_cpu_lines, "chips", 52,
            "The VM's virtual CPUs; colour = state (yellow ready, green running, blue halted)."),
    Element("ram", "Guest RAM", "vm", BOTH, _vm_ram_lines, "text", 46,
            "Guest-physical memory; a page gets a host frame the first time it is touched."),
    Element("disk", "Virtual disk", "vm", BOTH, _vm_disk_lines, "text", 44,
            "The disk the guest sees: an ATA drive backed by an image file on the host."),
    Element("nic", "Virtual NIC", "vm", ADVANCED, _vm_nic_lines, "text", 42,
            "The VM's network card, plugged into the hypervisor's virtual switch."),
    Element("exits", "Exits to the hypervisor", "vm", ADVANCED, _vm_exit_lines, "text", 42,
            "How often the guest trapped into the hypervisor, by reason."),
    Element("work", "Work done", "vm", ADVANCED, _vm_mode_lines, "text", 42,
            "Guest instructions retired and interrupts delivered."),
    Element("os", "Guest OS", "vm", BOTH, _vm_os_lines, "text", 62,
            "The VM's state and the last line the guest printed."),
)


def _sched_lines(s, vm):
    if s is None:
        return []
    return [f"slice {s.quantum_ns / 1e6:g} ms; run queue:"]


def _mm_lines(s, vm):
    if s is None:
        return []
    used = s.memory_manager["frames_total"] - s.memory_manager["frames_free"]
    return [f"{used:,} / {s.memory_manager['frames_total']:,} frames used",
            "given on first touch", f"{s.memory_manager['cow_faults']} copy-on-write faults"]


def _devices_lines(s, vm):
    return ["serial, timer, interrupt controller,", "disk controller, VGA, power ..."]


def _firmware_lines(s, vm):
    return ["BIOS calls", "(int 10h, 13h,", "15h) trap here"]


def _switch_lines(s, vm):
    nics = sum(1 for v in s.vms if v.nic) if s is not None else 0
    return [f"{nics} port{'s' if nics != 1 else ''} in use", "(no network)" if not nics else ""]


HYPERVISOR: tuple[Element, ...] = (
    Element("hv.scheduler", "Scheduler", "hypervisor", BOTH, _sched_lines, "chips", 3,
            "Decides which vCPU runs on which physical CPU, one time slice at a time."),
    Element("hv.memory", "Memory manager", "hypervisor", BOTH, _mm_lines, "text", 3,
            "Maps guest frames to host frames: demand paging, sharing, copy-on-write."),
    Element("hv.devices", "Device models", "hypervisor", BOTH, _devices_lines, "devices", 4,
            "Software copies of PC devices: each guest I/O exit lands in one of them."),
    Element("hv.firmware", "Firmware", "hypervisor", ADVANCED, _firmware_lines, "text", 2,
            "The BIOS the VM boots with: its services trap into the hypervisor."),
    Element("hv.switch", "vSwitch", "hypervisor", ADVANCED, _switch_lines, "text", 2,
            "Forwards Ethernet frames between virtual NICs and the host NIC."),
)


def _pcpu_lines(s, vm):
    return []


def _ram_lines(s, vm):
    if s is None:
        return []
    r = s.ram
    return [f"{r.frames:,} frames of 4 KiB ({r.frames * 4 // 1024} MiB), {r.free:,} free"]


def _disk_lines(s, vm):
    if s is None:
        return []
    images = [Path(v.disk).name for v in s.vms if v.disk]
    return list(s.extra.get("disks", ())) + ["image files:"] + [f"  {name}" for name in images]


def _nic_lines(s, vm):
    return list(s.extra.get("nics", ())) if s is not None else []


HARDWARE: tuple[Element, ...] = (
    Element("hw.pcpus", "Physical CPUs", "hardware", BOTH, _pcpu_lines, "pcpus", 3,
            "The host's cores; each runs one vCPU at a time, chosen by the scheduler."),
    Element("hw.ram", "Host RAM", "hardware", BOTH, _ram_lines, "ram", 6,
            "Every 4 KiB frame of host memory, coloured by the VM that owns it."),
    Element("hw.disks", "Disks", "hardware", BOTH, _disk_lines, "text", 2.6,
            "The host's storage: each VM disk is an image file on it."),
    Element("hw.nics", "NICs", "hardware", BOTH, _nic_lines, "text", 2.4,
            "The host's network cards."),
)


def visible(elements: tuple[Element, ...], layout: str) -> tuple[Element, ...]:
    return tuple(e for e in elements if layout in e.layouts)
