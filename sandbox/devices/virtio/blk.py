"""virtio-blk: the paravirtual disk (virtio 1.2 section 5.2), as Firecracker gives its guests.

A request is one descriptor chain:

    header   16 bytes the device reads: type (u32), reserved (u32), first sector (u64)
    data     the buffers: the device fills them for a read, reads them for a write
    status   1 byte the device writes last: 0 OK, 1 I/O error, 2 unsupported

The driver queues any number of chains and writes QueueNotify once (one exit). Each
request goes through the physical disk's I/O queue (``sandbox.storage.io_queue``);
when it is done, in guest time, the device moves the data, puts the chain on the used
ring and raises one interrupt. Compare the ATA disk: an exit for every 2 or 4 bytes.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any, Callable

from sandbox.devices.base import DeviceContext
from sandbox.devices.virtio.mmio import F_VERSION_1, VirtioMmioDevice
from sandbox.devices.virtio.virtqueue import Buffer, Chain, Virtqueue
from sandbox.errors import ImageError
from sandbox.storage.base import SECTOR
from sandbox.storage.vectored_io import guest_views, read_into, write_from

if TYPE_CHECKING:
    from sandbox.storage.base import BlockImage
    from sandbox.storage.disk_port import DiskPort
    from sandbox.storage.io_queue import IoRequest

DEVICE_ID_BLOCK = 2
# Feature bits (section 5.2.3).
F_SEG_MAX = 1 << 2            # config.seg_max: most data buffers in one request
F_RO = 1 << 5                 # the disk is read-only
F_BLK_SIZE = 1 << 6           # config.blk_size: the logical block size
F_FLUSH = 1 << 9              # the FLUSH request exists (else every write is durable at once)
# Request status bytes.
S_OK, S_IOERR, S_UNSUPP = 0, 1, 2
HEADER = struct.Struct("<IIQ")
QUEUE_SIZE = 128
ID_BYTES = 20
VIEW_CACHE = 256               # guest buffers whose host views are remembered


class VirtioBlk(VirtioMmioDevice):
    description = ("A paravirtual disk (virtio-blk over virtio-MMIO): the guest puts requests in a "
                   "ring in its own memory and exits once per batch, not once per word.")
    device_id = DEVICE_ID_BLOCK
    queue_size = QUEUE_SIZE

    def __init__(self, name: str, ctx: DeviceContext | None, image: "BlockImage", port: "DiskPort | None" = None,
                 irq: int = 10) -> None:
        if port is None:
            from sandbox.storage.io_queue import IoQueue  # noqa: PLC0415 (standalone use: an ideal disk)
            port = IoQueue(f"{name}-disk", "ideal").attach(name)
        self.image = image
        self.port = port
        self.capacity = image.size() // SECTOR
        self.device_features = F_VERSION_1 | F_SEG_MAX | F_BLK_SIZE | F_FLUSH | (F_RO if image.readonly else 0)
        self.generation = 0            # bumped by every reset: completions of older requests are dropped
        self._views: dict[tuple, list[memoryview]] = {}
        self._views_generation = -1
        super().__init__(name, ctx, irq)

    @property
    def config(self) -> bytes:
        """capacity (u64 sectors), size_max (u32), seg_max (u32), geometry (u16, u8, u8),
        blk_size (u32)."""
        return struct.pack("<QIIHBBI", self.capacity, 0, QUEUE_SIZE - 2, 0, 0, 0, SECTOR)

    def _reset_transport(self) -> None:
        self.generation += 1
        super()._reset_transport()

    # --- every register access is an exit: count them for the report ------------------------
    def read(self, offset: int, size: int) -> int:
        self.port.stats.exits += 1
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.port.stats.exits += 1
        super().write(offset, size, value)

    # --- time: completions are deadlines ------------------------------------------------------
    def next_deadline(self) -> int | None:
        return self.port.next_deadline()

    def advance(self, now_ns: int) -> None:
        self.port.advance(now_ns)

    # --- requests ---------------------------------------------------------------------------------
    def notify(self, queue: Virtqueue) -> None:
        while (chain := queue.pop(self.memory)) is not None:
            self._request(queue, chain)

    def _request(self, queue: Virtqueue, chain: Chain) -> None:
        bufs = chain.buffers
        if len(bufs) < 2 or bufs[0].device_writes or bufs[0].length < HEADER.size \
                or not bufs[-1].device_writes or bufs[-1].length < 1:
            self.fail("a virtio-blk request needs a readable header first and a writable status byte last")
            return
        kind, _reserved, sector = HEADER.unpack(self.memory.read(bufs[0].addr, HEADER.size))
        entry = REQUESTS.get(kind)
        if entry is None:
            self._finish(queue, chain, S_UNSUPP, 0)
            return
        entry[1](self, queue, chain, sector)

    def _finish(self, queue: Virtqueue, chain: Chain, status: int, written: int) -> None:
        self.memory.write(chain.buffers[-1].addr, bytes((status,)))
        self.used(queue, chain.head, written + 1)

    def _submit(self, op: str, sector: int, length: int, then: Callable[[], tuple[int, int]],
                queue: Virtqueue, chain: Chain) -> None:
        """Queue the request; at completion run ``then`` (-> status, bytes written) and
        give the chain back, unless the driver reset the device meanwhile."""
        generation = self.generation

        def done(_req: "IoRequest") -> None:
            if generation != self.generation:
                return
            try:
                status, written = then()
            except (OSError, ImageError):
                status, written = S_IOERR, 0
            self._finish(queue, chain, status, written)
        self.port.submit(op, sector, length, done, self.ctx.clock())

    def _data(self, chain: Chain, device_writes: bool) -> tuple[list[Buffer], int] | None:
        """The data buffers between header and status, if they all go the right way."""
        data = chain.buffers[1:-1]
        if any(b.device_writes != device_writes for b in data):
            return None
        return data, sum(b.length for b in data)

    def host_views(self, buffers: list[Buffer], device_writes: bool) -> list[memoryview] | None:
        """Views of the host frames behind ``buffers`` (see ``storage.vectored_io``).
        Drivers reuse their buffers, so the views are kept until the VM's memory
        mappings change (its ``generation`` moves, as a vCPU's TLB is flushed)."""
        mem = self.memory
        if mem.generation != self._views_generation:
            self._views.clear()
        key = (tuple((b.addr, b.length) for b in buffers), device_writes)
        views = self._views.get(key)
        if views is None:
            for _attempt in range(3):            # a fault on the way may move other pages
                start = mem.generation
                views = []
                for b in buffers:
                    part = guest_views(mem, b.addr, b.length, device_writes)
                    if part is None:
                        return None
                    views += part
                if mem.generation == start:
                    break
            else:
                return None
            if mem.generation != self._views_generation:
                self._views.clear()
                self._views_generation = mem.generation
            if len(self._views) >= VIEW_CACHE:
                self._views.clear()
            self._views[key] = views
        return views

    def _in_range(self, sector: int, length: int) -> bool:
        return length % SECTOR == 0 and sector + length // SECTOR <= self.capacity

    def state(self) -> dict[str, Any]:
        return {**super().state(), "capacity": self.capacity, "readonly": self.image.readonly,
                "image": getattr(self.image, "path", None)}


# --- the request types: one handler each --------------------------------------------------------
def _read(dev: VirtioBlk, queue: Virtqueue, chain: Chain, sector: int) -> None:
    found = dev._data(chain, device_writes=True)
    if found is None or not dev._in_range(sector, found[1]):
        dev._finish(queue, chain, S_IOERR, 0)
        return
    buffers, total = found

    def move() -> tuple[int, int]:
        views = dev.host_views(buffers, device_writes=True)
        if views is not None:
            read_into(dev.image, sector * SECTOR, views)        # the kernel copies into guest RAM
        else:                                                   # a buffer is not plain RAM
            data = memoryview(dev.image.read(sector * SECTOR, total))
            pos = 0
            for b in buffers:
                dev.memory.write(b.addr, data[pos:pos + b.length])
                pos += b.length
        return S_OK, total
    dev._submit("read", sector, total, move, queue, chain)


def _write(dev: VirtioBlk, queue: Virtqueue, chain: Chain, sector: int) -> None:
    found = dev._data(chain, device_writes=False)
    if found is None or not dev._in_range(sector, found[1]) or dev.image.readonly:
        dev._finish(queue, chain, S_IOERR, 0)
        return
    buffers, total = found

    def move() -> tuple[int, int]:
        views = dev.host_views(buffers, device_writes=False)
        if views is not None:
            write_from(dev.image, sector * SECTOR, views)
        else:
            dev.image.write(sector * SECTOR, b"".join(dev.memory.read(b.addr, b.length) for b in buffers))
        return S_OK, 0
    dev._submit("write", sector, total, move, queue, chain)


def _flush(dev: VirtioBlk, queue: Virtqueue, chain: Chain, sector: int) -> None:
    def sync() -> tuple[int, int]:
        dev.image.flush()
        dev.ctx.publish("disk.flush")
        return S_OK, 0
    dev._submit("flush", 0, 0, sync, queue, chain)


def _get_id(dev: VirtioBlk, queue: Virtqueue, chain: Chain, sector: int) -> None:
    found = dev._data(chain, device_writes=True)
    if found is None or not found[0]:
        dev._finish(queue, chain, S_IOERR, 0)
        return
    ident = f"sandbox-{dev.ctx.vm_name}".encode()[:ID_BYTES].ljust(ID_BYTES, b"\0")
    out = found[0][0]
    dev.memory.write(out.addr, ident[:out.length])
    dev._finish(queue, chain, S_OK, min(out.length, ID_BYTES))


Handler = Callable[[VirtioBlk, Virtqueue, Chain, int], None]

# Request type -> (what it does, handler).
REQUESTS: dict[int, tuple[str, Handler]] = {
    0: ("IN: read sectors into the guest's buffers", _read),
    1: ("OUT: write the guest's buffers to sectors", _write),
    4: ("FLUSH: make every completed write durable (fsync)", _flush),
    8: ("GET_ID: the disk's serial number, 20 bytes", _get_id),
}
