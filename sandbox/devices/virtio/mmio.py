"""The virtio-over-MMIO transport (virtio 1.2 section 4.2.2, "modern" version 2).

One 4 KiB window of registers per device; the guest finds devices at fixed addresses
(see ``VIRTIO_SLOTS``: like Firecracker, no PCI bus to enumerate). A device subclass
sets ``device_id``, ``device_features`` and ``config`` and implements ``notify``.
"""
from __future__ import annotations

import struct
from typing import Any, Callable

from sandbox.devices.base import Device, DeviceContext
from sandbox.devices.virtio.virtqueue import Virtqueue, VirtqueueError

MAGIC = 0x74726976            # "virt"
VERSION = 2
VENDOR = 0x53425831           # "SBX1"
WINDOW = 0x1000
F_VERSION_1 = 1 << 32         # a modern (virtio 1.x) device

# Where virtio devices live in guest-physical memory, and their ISA interrupt lines.
VIRTIO_BASE = 0xD0000000
VIRTIO_IRQS = (10, 11, 5, 9)


def slot(n: int) -> tuple[int, int]:
    """(guest-physical base, IRQ) of the n-th virtio device of a VM."""
    return VIRTIO_BASE + n * WINDOW, VIRTIO_IRQS[n % len(VIRTIO_IRQS)]


# Device status bits (section 2.1).
ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, NEEDS_RESET, FAILED = 1, 2, 4, 8, 64, 128
INT_USED_BUFFER, INT_CONFIG_CHANGE = 1, 2


class VirtioMmioDevice(Device):
    device_id = 0
    device_features = F_VERSION_1
    num_queues = 1
    queue_size = 128

    def __init__(self, name: str, ctx: DeviceContext | None = None, irq: int = 10) -> None:
        super().__init__(name, ctx)
        self.irq = self.ctx.irq(irq)
        self.queues = [Virtqueue(i, self.queue_size) for i in range(self.num_queues)]
        self.notifications = 0
        self.interrupts = 0
        self._reset_transport()

    def _reset_transport(self) -> None:
        self.status = 0
        self.features_sel = self.driver_features_sel = 0
        self.driver_features = 0
        self.queue_sel = 0
        self.interrupt_status = 0
        for q in self.queues:
            q.reset()
        if self.irq.level:
            self.irq.lower()

    def reset(self) -> None:
        self._reset_transport()

    @property
    def config(self) -> bytes:
        """The device-specific configuration space (offset 0x100)."""
        return b""

    # --- what device subclasses use -------------------------------------------------------
    @property
    def memory(self) -> Any:
        return self.ctx.memory

    def notify(self, queue: Virtqueue) -> None:
        """The driver put buffers in ``queue``."""

    def used(self, queue: Virtqueue, head: int, written: int) -> None:
        """Give a chain back to the driver and interrupt it (unless it asked not to be)."""
        queue.push(self.memory, head, written)
        if not queue.notifications_suppressed(self.memory):
            self.interrupt_status |= INT_USED_BUFFER
            self.interrupts += 1
            self.irq.raise_()

    def fail(self, why: str) -> None:
        """The driver broke the rules: mark the device as needing a reset (section 2.1.2)."""
        self.status |= NEEDS_RESET
        self.ctx.publish("io.virtio_error", device=self.name, reason=why)

    # --- registers --------------------------------------------------------------------------
    def _queue(self) -> Virtqueue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    def read(self, offset: int, size: int) -> int:
        if offset >= 0x100:
            cfg = self.config + bytes(size)
            return int.from_bytes(cfg[offset - 0x100:offset - 0x100 + size], "little")
        reader = _READ.get(offset)
        return reader(self) if reader else 0

    def write(self, offset: int, size: int, value: int) -> None:
        writer = _WRITE.get(offset)
        if writer is not None:
            writer(self, value)

    def _notify(self, value: int) -> None:
        self.notifications += 1
        if value < len(self.queues) and self.status & DRIVER_OK and not self.status & NEEDS_RESET:
            try:
                self.notify(self.queues[value])
            except VirtqueueError as e:
                self.queues[value].broken = str(e)
                self.fail(str(e))

    def _ack(self, value: int) -> None:
        self.interrupt_status &= ~value
        if not self.interrupt_status and self.irq.level:
            self.irq.lower()

    def _set_status(self, value: int) -> None:
        if value == 0:
            self._reset_transport()
        else:
            self.status = value

    def _set_queue_field(self, field: str, high: bool) -> Callable[[int], None]:
        def setter(value: int) -> None:
            q = self._queue()
            if q is None:
                return
            old = getattr(q, field)
            new = (old & 0xFFFFFFFF) | (value << 32) if high else (old & ~0xFFFFFFFF) | value
            setattr(q, field, new)
        return setter

    def state(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "status": self.status, "notifications": self.notifications,
                "interrupts": self.interrupts,
                "queues": [{"size": q.size, "ready": q.ready, "avail": q.last_avail, "used": q.used_idx,
                            "broken": q.broken} for q in self.queues]}


def _features(dev: VirtioMmioDevice) -> int:
    return (dev.device_features >> (32 * dev.features_sel)) & 0xFFFFFFFF if dev.features_sel < 2 else 0


def _set_driver_features(dev: VirtioMmioDevice, value: int) -> None:
    shift = 32 * dev.driver_features_sel
    if dev.driver_features_sel < 2:
        dev.driver_features = (dev.driver_features & ~(0xFFFFFFFF << shift)) | (value << shift)


def _queue_attr(name: str, default: int = 0) -> Callable[[VirtioMmioDevice], int]:
    return lambda dev: getattr(dev._queue(), name) if dev._queue() is not None else default


def _set_queue_num(dev: VirtioMmioDevice, value: int) -> None:
    q = dev._queue()
    if q is not None and 0 < value <= q.max_size and value & (value - 1) == 0:
        q.size = value


def _set_queue_ready(dev: VirtioMmioDevice, value: int) -> None:
    q = dev._queue()
    if q is not None:
        q.ready = bool(value & 1)


# Register table: offset -> what a read returns / what a write does.
_READ: dict[int, Callable[[VirtioMmioDevice], int]] = {
    0x000: lambda d: MAGIC,
    0x004: lambda d: VERSION,
    0x008: lambda d: d.device_id,
    0x00C: lambda d: VENDOR,
    0x010: _features,
    0x034: _queue_attr("max_size"),
    0x044: lambda d: int(d._queue().ready) if d._queue() else 0,
    0x060: lambda d: d.interrupt_status,
    0x070: lambda d: d.status,
    0x0FC: lambda d: 0,                        # config generation: our config never changes
}
_WRITE: dict[int, Callable[[VirtioMmioDevice, int], None]] = {
    0x014: lambda d, v: setattr(d, "features_sel", v),
    0x020: _set_driver_features,
    0x024: lambda d, v: setattr(d, "driver_features_sel", v),
    0x030: lambda d, v: setattr(d, "queue_sel", v),
    0x038: _set_queue_num,
    0x044: _set_queue_ready,
    0x050: VirtioMmioDevice._notify,
    0x064: VirtioMmioDevice._ack,
    0x070: VirtioMmioDevice._set_status,
    0x080: lambda d, v: d._set_queue_field("desc", False)(v),
    0x084: lambda d, v: d._set_queue_field("desc", True)(v),
    0x090: lambda d, v: d._set_queue_field("avail", False)(v),
    0x094: lambda d, v: d._set_queue_field("avail", True)(v),
    0x0A0: lambda d, v: d._set_queue_field("used", False)(v),
    0x0A4: lambda d, v: d._set_queue_field("used", True)(v),
}

__all__ = ["VirtioMmioDevice", "slot", "struct"]
