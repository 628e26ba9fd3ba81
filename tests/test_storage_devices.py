"""The two disk controllers with a physical disk behind them, driven register by register:
virtio-blk requests on a ring, and the ATA disk keeping BSY until the queue is done."""
from __future__ import annotations

import struct

import pytest

from sandbox.devices.ata_queued import QueuedAtaDisk
from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.virtio.blk import F_FLUSH, F_RO, S_IOERR, S_OK, S_UNSUPP, VirtioBlk
from sandbox.devices.virtio.mmio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK
from sandbox.host.ram import FramePool
from sandbox.hypervisor.memory_manager import MemoryManager
from sandbox.storage.io_queue import IoQueue
from sandbox.storage.raw import RawImage

DESC, AVAIL, USED = 0x10000, 0x11000, 0x12000
HDR, DATA, STATUS = 0x20000, 0x30000, 0x2F000
SECTORS = 64


class Clock:
    now = 0

    def __call__(self) -> int:
        return self.now


def image(tmp_path, readonly=False):
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(bytes([i]) * 512 for i in range(SECTORS)))
    return RawImage(str(path), readonly=readonly)


def machine(tmp_path, kind="ideal", readonly=False):
    mem = MemoryManager(FramePool(1024), lambda *a, **k: None).create("vm", 2 << 20)
    levels, clock, flushes = [], Clock(), []
    img = image(tmp_path, readonly)
    port = IoQueue("disk0", kind).attach("vm")
    ctx = DeviceContext(memory=mem, clock=clock, irq=lambda n: IrqLine(n, lambda i, lvl: levels.append(lvl)),
                        publish=lambda kind, **d: flushes.append(kind))
    return img, port, mem, levels, clock, ctx, flushes


def virtio(tmp_path, **kw):
    img, port, mem, levels, clock, ctx, flushes = machine(tmp_path, **kw)
    dev = VirtioBlk("virtio-blk", ctx, img, port)
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER)
    dev.write(0x024, 4, 1)
    dev.write(0x020, 4, 1)
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK)
    dev.write(0x038, 4, 16)
    for off, addr in ((0x080, DESC), (0x090, AVAIL), (0x0A0, USED)):
        dev.write(off, 4, addr)
    dev.write(0x044, 4, 1)
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)
    return dev, img, mem, levels, clock, flushes


def request(dev, mem, kind, sector, length=512, data_writable=True, head=0):
    """Queue one request: header, data (if any), status; then QueueNotify."""
    base = head * 3
    mem.write(HDR + 16 * head, struct.pack("<IIQ", kind, 0, sector))
    mem.write(STATUS + head, b"\xEE")
    chain = [(HDR + 16 * head, 16, 0)]
    if length:
        chain.append((DATA + 0x1000 * head, length, 2 if data_writable else 0))
    chain.append((STATUS + head, 1, 2))
    for i, (addr, n, flags) in enumerate(chain):
        nxt = base + i + 1 if i + 1 < len(chain) else 0
        mem.write(DESC + 16 * (base + i), struct.pack("<QIHH", addr, n, flags | (1 if i + 1 < len(chain) else 0), nxt))
    idx = mem.read_u16(AVAIL + 2)
    mem.write_u16(AVAIL + 4 + 2 * (idx % 16), base)
    mem.write_u16(AVAIL + 2, idx + 1)


def used(mem):
    n = mem.read_u16(USED + 2)
    return [struct.unpack("<II", mem.read(USED + 4 + 8 * i, 8)) for i in range(n)]


# --- virtio-blk ------------------------------------------------------------------------------
def test_config_space_says_capacity_and_features_say_flush(tmp_path):
    dev, *_ = virtio(tmp_path)
    assert dev.read(0x100, 4) == SECTORS and dev.read(0x104, 4) == 0
    assert dev.read(0x008, 4) == 2                            # device id: block
    dev.write(0x014, 4, 0)
    assert dev.read(0x010, 4) & F_FLUSH and not dev.read(0x010, 4) & F_RO


def test_a_read_fills_the_buffer_then_the_status_and_the_used_ring(tmp_path):
    dev, img, mem, levels, *_ = virtio(tmp_path)
    request(dev, mem, 0, sector=5, length=1024)
    dev.write(0x050, 4, 0)
    assert mem.read(DATA, 1024) == bytes([5]) * 512 + bytes([6]) * 512
    assert mem.read(STATUS, 1) == bytes([S_OK])
    assert used(mem) == [(0, 1025)] and levels[-1] is True


def test_a_write_reaches_the_file_and_flush_syncs_it(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr("os.fsync", synced.append)
    dev, img, mem, levels, clock, flushes = virtio(tmp_path)
    mem.write(DATA, b"W" * 512)
    request(dev, mem, 1, sector=3, data_writable=False)
    dev.write(0x050, 4, 0)
    assert (tmp_path / "disk.img").read_bytes()[3 * 512:4 * 512] == b"W" * 512
    request(dev, mem, 4, sector=0, length=0, head=1)
    dev.write(0x050, 4, 0)
    assert synced == [img._fd] and "disk.flush" in flushes
    assert [s for _, s in used(mem)] == [1, 1] and mem.read(STATUS + 1, 1) == bytes([S_OK])


@pytest.mark.parametrize("kind, sector, writable, status", [
    (0, SECTORS, True, S_IOERR),          # past the end of the disk
    (0, 0, False, S_IOERR),               # a read into a buffer the device may not write
    (1, 0, False, S_IOERR),               # a write to a read-only disk (see readonly below)
    (7, 0, True, S_UNSUPP),               # an unknown request type
])
def test_bad_requests_complete_with_an_error_status(tmp_path, kind, sector, writable, status):
    dev, img, mem, *_ = virtio(tmp_path, readonly=kind == 1)
    request(dev, mem, kind, sector=sector, data_writable=writable)
    dev.write(0x050, 4, 0)
    assert mem.read(STATUS, 1) == bytes([status]) and len(used(mem)) == 1


def test_a_read_only_disk_offers_f_ro(tmp_path):
    dev, *_ = virtio(tmp_path, readonly=True)
    dev.write(0x014, 4, 0)
    assert dev.read(0x010, 4) & F_RO


def test_on_an_hdd_the_chain_comes_back_at_the_completion_deadline(tmp_path):
    dev, img, mem, levels, clock, _ = virtio(tmp_path, kind="hdd")
    clock.now = 1000
    request(dev, mem, 0, sector=40)
    dev.write(0x050, 4, 0)
    deadline = dev.next_deadline()
    assert used(mem) == [] and deadline > 1000 + 4_000_000          # seek + half a rotation
    dev.advance(deadline - 1)
    assert used(mem) == []
    clock.now = deadline
    dev.advance(deadline)
    assert used(mem) == [(0, 513)] and mem.read(DATA, 1) == bytes([40]) and levels[-1] is True


def test_a_reset_drops_requests_still_on_the_disk(tmp_path):
    dev, img, mem, levels, clock, _ = virtio(tmp_path, kind="ssd")
    request(dev, mem, 0, sector=1)
    dev.write(0x050, 4, 0)
    dev.write(0x070, 4, 0)                                 # the driver resets the device
    dev.advance(dev.next_deadline())
    assert used(mem) == [] and mem.read(DATA, 1) == b"\0"


def test_register_accesses_are_counted_as_exits(tmp_path):
    dev, img, mem, *_ = virtio(tmp_path)
    before = dev.port.stats.exits
    request(dev, mem, 0, sector=0)
    dev.write(0x050, 4, 0)
    dev.read(0x060, 4)
    dev.write(0x064, 4, 1)
    assert dev.port.stats.exits - before == 3


# --- the ATA disk on a physical disk -----------------------------------------------------------
def ata(tmp_path, kind):
    img, port, mem, levels, clock, ctx, _ = machine(tmp_path, kind)
    return QueuedAtaDisk("ata0", ctx, img, port), img, levels, clock


def command(disk, code, lba, count=1):
    disk.write(6, 1, 0xE0)
    disk.write(2, 1, count)
    disk.write(3, 1, lba)
    disk.write(4, 1, 0)
    disk.write(5, 1, 0)
    disk.write(7, 1, code)


def test_ata_read_keeps_bsy_until_the_disk_is_done_then_interrupts(tmp_path):
    disk, img, levels, clock = ata(tmp_path, "ssd")
    command(disk, 0x20, lba=9)
    assert disk.control.read(0, 1) == 0x80 and disk.read(0, 2) == 0       # BSY, no data yet
    clock.now = disk.next_deadline()
    disk.advance(clock.now)
    assert disk.control.read(0, 1) & 0x08 and levels[-1] is True          # DRQ and IRQ 14
    words = [disk.read(0, 2) for _ in range(256)]
    assert words == [0x0909] * 256


def test_ata_write_goes_to_the_file_only_when_the_disk_is_done(tmp_path):
    disk, img, levels, clock = ata(tmp_path, "hdd")
    command(disk, 0x30, lba=2)
    assert disk.control.read(0, 1) & 0x08                                 # DRQ: send the data
    for _ in range(256):
        disk.write(0, 2, 0x4142)
    assert disk.control.read(0, 1) == 0x80                                # BSY: writing
    assert (tmp_path / "disk.img").read_bytes()[1024:1026] == b"\x02\x02"
    clock.now = disk.next_deadline()
    disk.advance(clock.now)
    assert disk.control.read(0, 1) == 0x50 and levels[-1] is True
    assert (tmp_path / "disk.img").read_bytes()[1024:1536] == b"BA" * 256


def test_ata_software_reset_forgets_a_request_in_flight(tmp_path):
    disk, img, levels, clock = ata(tmp_path, "ssd")
    command(disk, 0x20, lba=1)
    disk.control.write(0, 1, 0x04)                                        # SRST
    disk.control.write(0, 1, 0x00)
    disk.advance(disk.next_deadline())
    assert disk.control.read(0, 1) == 0x50 and not disk.control.read(0, 1) & 0x08
