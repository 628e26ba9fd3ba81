"""THE table of devices every PC virtual machine gets, in creation order.

The builder's whole job is::

    parts = MachineParts(memory_mib=..., disk=...)
    for spec in PC_DEVICES:
        dev = spec.factory(spec.name, ctx, parts)
        for base, length, attr in spec.windows:
            bus.register(base, length, getattr(dev, attr) if attr else dev)
        parts.register(spec.name, dev)

Later factories find earlier devices through ``parts`` (port 0x61 needs the PIT).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable

from sandbox.devices.acpi_pm import AcpiPm1Control
from sandbox.devices.ata_queued import QueuedAtaDisk
from sandbox.devices.base import Device, DeviceContext
from sandbox.devices.cmos_rtc import DEFAULT_EPOCH, CmosRtc
from sandbox.devices.debug_exit import DebugExit
from sandbox.devices.i8042 import I8042
from sandbox.devices.pic8259 import PicPair
from sandbox.devices.pit8254 import Pit8254
from sandbox.devices.port92 import Port92
from sandbox.devices.portb import PortB
from sandbox.devices.post import PostPort
from sandbox.devices.uart16550 import Uart16550
from sandbox.devices.vga import Vga
from sandbox.devices.virtio.blk import VirtioBlk
from sandbox.devices.virtio.net import VirtioNet
from sandbox.net.frames import mac_bytes
from sandbox.net.netconfig import nic_mac

if TYPE_CHECKING:
    from sandbox.config.model import VmConfig
    from sandbox.storage.base import BlockImage
    from sandbox.storage.disk_port import DiskPort


@dataclass
class MachineParts:
    """What device factories need besides their context: the machine's resources
    and the devices created so far."""
    memory_mib: int
    disk: "BlockImage | None" = None
    rtc_epoch: datetime = DEFAULT_EPOCH
    devices: dict[str, Device] = field(default_factory=dict)
    config: "VmConfig | None" = None          # the VM's config, for devices it configures (NIC)
    disk_port: "DiskPort | None" = None       # the disk's place in its physical disk's I/O queue

    def disk_on(self, bus: str) -> tuple["BlockImage | None", "DiskPort | None"]:
        """(image, I/O port) for the controller on ``bus`` ("ata" or "virtio"), or
        (None, None) when the VM's disk is on the other bus."""
        wanted = self.config.disk_bus if self.config is not None else "ata"
        return (self.disk, self.disk_port) if bus == wanted else (None, None)

    def register(self, name: str, device: Device) -> None:
        self.devices[name] = device

    @property
    def pic(self) -> PicPair:
        return self.devices["pic"]  # type: ignore[return-value]

    @property
    def pit(self) -> Pit8254:
        return self.devices["pit"]  # type: ignore[return-value]


Factory = Callable[[str, DeviceContext, MachineParts], Device]
Window = tuple[int, int, "str | None"]    # (base port, number of ports, sub-device attribute)


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    factory: Factory
    windows: tuple[Window, ...]
    irq: int | None
    description: str


PC_DEVICES: tuple[DeviceSpec, ...] = (
    DeviceSpec("pic", lambda n, c, p: PicPair(n, c),
               ((0x20, 2, "master"), (0xA0, 2, "slave")), None,
               "Two cascaded 8259A interrupt controllers route the sixteen IRQ lines to the CPU."),
    DeviceSpec("pit", lambda n, c, p: Pit8254(n, c), ((0x40, 4, None),), 0,
               "The 8254 timer: channel 0 is the operating system's clock tick on IRQ 0."),
    DeviceSpec("portb", lambda n, c, p: PortB(n, c, p.pit), ((0x61, 1, None),), None,
               "Port 0x61 gates PIT channel 2 and shows its output, which guests use to calibrate delays."),
    DeviceSpec("rtc", lambda n, c, p: CmosRtc(n, c, memory_mib=p.memory_mib, epoch=p.rtc_epoch),
               ((0x70, 2, None),), 8,
               "The real-time clock and CMOS RAM: a deterministic date and the machine's memory size."),
    DeviceSpec("com1", lambda n, c, p: Uart16550(n, c, irq=4), ((0x3F8, 8, None),), 4,
               "The 16550A serial port COM1: the guest's console."),
    DeviceSpec("i8042", lambda n, c, p: I8042(n, c), ((0x60, 1, None), (0x64, 1, "command")), 1,
               "The keyboard controller, used here for the A20 gate and for machine reset."),
    DeviceSpec("port92", lambda n, c, p: Port92(n, c), ((0x92, 1, None),), None,
               "System control port A: the fast A20 gate and fast reset."),
    DeviceSpec("ata0", lambda n, c, p: QueuedAtaDisk(n, c, *p.disk_on("ata")),
               ((0x1F0, 8, None), (0x3F6, 1, "control")), 14,
               "The ATA disk on the primary IDE channel, backed by the VM's disk image (disk_bus = \"ata\")."),
    DeviceSpec("vga", lambda n, c, p: Vga(n, c), ((0x3C0, 32, None),), None,
               "VGA text mode: the screen is guest RAM at 0xB8000; these ports hold the cursor and colours."),
    DeviceSpec("acpi-pm", lambda n, c, p: AcpiPm1Control(n, c), ((0x604, 2, None),), None,
               "ACPI power management: the guest powers the machine off here."),
    DeviceSpec("debug-exit", lambda n, c, p: DebugExit(n, c), ((0xF4, 4, None),), None,
               "QEMU's isa-debug-exit: a test guest ends the VM with an exit status."),
    DeviceSpec("post", lambda n, c, p: PostPort(n, c), ((0x80, 1, None),), None,
               "The POST code port 0x80, also written by Linux as an I/O delay."),
)


def spec(name: str) -> DeviceSpec:
    for entry in PC_DEVICES:
        if entry.name == name:
            return entry
    raise KeyError(f"no device named {name!r} in the PC device table")


# --- virtio-MMIO devices: present when the VM's config asks for them ---------------------------
@dataclass(frozen=True)
class VirtioSpec:
    """A paravirtual device in a fixed virtio-MMIO slot (``virtio.mmio.slot(n)`` gives its
    base address and IRQ), so a guest finds it at the same place every time, as
    Firecracker's guests do: slot 0 is the block device, slot 1 the network card."""
    name: str
    slot: int
    wanted: Callable[["VmConfig"], bool]
    factory: Callable[[str, DeviceContext, MachineParts, int], Device]    # (name, ctx, parts, irq)
    description: str


def _virtio_net(name: str, ctx: DeviceContext, parts: MachineParts, irq: int) -> Device:
    assert parts.config is not None
    return VirtioNet(name, ctx, irq, mac=mac_bytes(nic_mac(parts.config)))


def _virtio_blk(name: str, ctx: DeviceContext, parts: MachineParts, irq: int) -> Device:
    image, port = parts.disk_on("virtio")
    return VirtioBlk(name, ctx, image, port, irq)


VIRTIO_DEVICES: tuple[VirtioSpec, ...] = (
    VirtioSpec("virtio-blk", 0, lambda cfg: cfg.disk is not None and cfg.disk_bus == "virtio", _virtio_blk,
               "A paravirtual disk (slot 0: 0xD0000000, IRQ 10): requests in a ring, one exit per batch."),
    VirtioSpec("virtio-net", 1, lambda cfg: cfg.nic is not None, _virtio_net,
               "A virtio-net card (slot 1: 0xD0001000, IRQ 11), plugged into a port of a virtual switch."),
)
