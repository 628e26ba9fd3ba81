"""The virtio-MMIO transport and split virtqueues, driven the way a guest driver does."""
from __future__ import annotations

import struct

from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.virtio.mmio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, MAGIC, VirtioMmioDevice
from sandbox.host.ram import FramePool
from sandbox.hypervisor.memory_manager import MemoryManager

DESC, AVAIL, USED = 0x10000, 0x11000, 0x12000


class Echo(VirtioMmioDevice):
    """Copies each chain's readable bytes, upper-cased, into its writable buffer."""
    device_id = 42

    def notify(self, queue):
        while (chain := queue.pop(self.memory)) is not None:
            data = b"".join(self.memory.read(b.addr, b.length) for b in chain.readable())
            out = chain.writable()[0]
            reply = data.upper()[:out.length]
            self.memory.write(out.addr, reply)
            self.used(queue, chain.head, len(reply))


def make():
    mm = MemoryManager(FramePool(1024), lambda *a, **k: None)
    mem = mm.create("vm", 2 << 20)
    levels = []
    ctx = DeviceContext(memory=mem, irq=lambda n: IrqLine(n, lambda i, lvl: levels.append(lvl)))
    return Echo("echo", ctx), mem, levels


def driver_init(dev):
    assert dev.read(0x000, 4) == MAGIC and dev.read(0x008, 4) == 42
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER)
    dev.write(0x024, 4, 1)
    dev.write(0x020, 4, 1)                 # accept VIRTIO_F_VERSION_1 (bit 32)
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK)
    dev.write(0x030, 4, 0)
    assert dev.read(0x034, 4) >= 8
    dev.write(0x038, 4, 8)
    for off, addr in ((0x080, DESC), (0x090, AVAIL), (0x0A0, USED)):
        dev.write(off, 4, addr)
        dev.write(off + 4, 4, 0)
    dev.write(0x044, 4, 1)
    dev.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)


def offer(mem, slot, descs, head):
    for i, (addr, length, flags, nxt) in descs.items():
        mem.write(DESC + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))
    idx = mem.read_u16(AVAIL + 2)
    mem.write_u16(AVAIL + 4 + 2 * (idx % 8), head)
    mem.write_u16(AVAIL + 2, idx + 1)


def test_request_goes_round_the_rings():
    dev, mem, levels = make()
    driver_init(dev)
    mem.write(0x20000, b"hello virtio")
    offer(mem, 0, {0: (0x20000, 12, 1, 1), 1: (0x21000, 64, 2, 0)}, head=0)
    dev.write(0x050, 4, 0)                 # QueueNotify
    assert mem.read(0x21000, 12) == b"HELLO VIRTIO"
    assert mem.read_u16(USED + 2) == 1
    assert struct.unpack("<II", mem.read(USED + 4, 8)) == (0, 12)
    assert dev.read(0x060, 4) == 1 and levels[-1] is True
    dev.write(0x064, 4, 1)                 # InterruptACK
    assert dev.read(0x060, 4) == 0 and levels[-1] is False


def test_looping_chain_is_refused_not_hung():
    dev, mem, _ = make()
    driver_init(dev)
    offer(mem, 0, {0: (0x20000, 4, 1, 1), 1: (0x20000, 4, 1, 0 + 0)}, head=0)
    mem.write(DESC + 16 * 1, struct.pack("<QIHH", 0x20000, 4, 1, 0))   # 1 -> 0 -> 1 ...
    dev.write(0x050, 4, 0)
    assert dev.status & 64                 # NEEDS_RESET
    assert "loops" in dev.queues[0].broken


def test_buffer_outside_guest_ram_is_refused():
    dev, mem, _ = make()
    driver_init(dev)
    offer(mem, 0, {0: (0x7FFF0000, 16, 2, 0)}, head=0)
    dev.write(0x050, 4, 0)
    assert dev.status & 64 and "outside guest RAM" in dev.queues[0].broken


def test_status_zero_resets_the_device():
    dev, mem, _ = make()
    driver_init(dev)
    dev.write(0x070, 4, 0)
    assert dev.read(0x070, 4) == 0 and dev.read(0x044, 4) == 0
