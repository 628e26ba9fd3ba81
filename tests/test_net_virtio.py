"""virtio-net, driven register by register the way a guest driver does (compare
test_virtio_mmio.py), then two NICs through a switch."""
from __future__ import annotations

import struct

from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.virtio.mmio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK, MAGIC
from sandbox.devices.virtio.net import F_MAC, F_MTU, F_STATUS, NET_HDR, VirtioNet
from sandbox.host.ram import FramePool
from sandbox.hypervisor.memory_manager import MemoryManager
from sandbox.net import frames as f
from sandbox.net.vlan import PortVlan
from sandbox.net.vswitch import VirtualSwitch

QSIZE = 8
RINGS = {0: (0x10000, 0x11000, 0x12000), 1: (0x13000, 0x14000, 0x15000)}   # desc, avail, used
RX_BUF, TX_BUF = 0x20000, 0x40000
MAC = f.mac_bytes("52:54:00:12:34:56")


class Driver:
    """The guest side: what tinyos's virtio_net.c does, in Python."""

    def __init__(self, mac: bytes = MAC) -> None:
        mm = MemoryManager(FramePool(1024), lambda *a, **k: None)
        self.mem = mm.create("vm", 2 << 20)
        self.now = 0
        self.irq_levels: list[bool] = []
        ctx = DeviceContext(memory=self.mem, clock=lambda: self.now,
                            irq=lambda n: IrqLine(n, lambda i, lvl: self.irq_levels.append(lvl)))
        self.dev = VirtioNet("net0", ctx, mac=mac)
        self.seen_used = {0: 0, 1: 0}
        self.tx_next = 0

    def init(self, rx_buffers: int = 4) -> None:
        d = self.dev
        assert d.read(0x000, 4) == MAGIC and d.read(0x008, 4) == 1       # device id 1: network card
        d.write(0x070, 4, ACKNOWLEDGE | DRIVER)
        d.write(0x014, 4, 0)
        offered = d.read(0x010, 4)
        assert offered & F_MAC and offered & F_STATUS and offered & F_MTU
        d.write(0x024, 4, 0)
        d.write(0x020, 4, F_MAC | F_STATUS)
        d.write(0x024, 4, 1)
        d.write(0x020, 4, 1)                                              # VIRTIO_F_VERSION_1
        d.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK)
        for q, (desc, avail, used) in RINGS.items():
            d.write(0x030, 4, q)
            d.write(0x038, 4, QSIZE)
            for off, addr in ((0x080, desc), (0x090, avail), (0x0A0, used)):
                d.write(off, 4, addr)
                d.write(off + 4, 4, 0)
            d.write(0x044, 4, 1)
        d.write(0x070, 4, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)
        for i in range(rx_buffers):
            self.post_rx(i)
        d.write(0x050, 4, 0)

    def config_mac(self) -> bytes:
        return bytes(self.dev.read(0x100 + i, 1) for i in range(6))

    def post_rx(self, i: int, size: int = 1526) -> None:
        self._offer(0, i, RX_BUF + i * 0x800, size, 2)

    def _offer(self, q: int, i: int, addr: int, length: int, flags: int) -> None:
        desc, avail, _ = RINGS[q]
        self.mem.write(desc + 16 * i, struct.pack("<QIHH", addr, length, flags, 0))
        idx = self.mem.read_u16(avail + 2)
        self.mem.write_u16(avail + 4 + 2 * (idx % QSIZE), i)
        self.mem.write_u16(avail + 2, idx + 1)

    def send(self, frame: bytes) -> None:
        i = self.tx_next % QSIZE
        self.tx_next += 1
        self.mem.write(TX_BUF + i * 0x800, bytes(NET_HDR) + frame)
        self._offer(1, i, TX_BUF + i * 0x800, NET_HDR + len(frame), 0)
        self.dev.write(0x050, 4, 1)

    def received(self) -> list[bytes]:
        """Drain the receive queue's used ring (and give each buffer back)."""
        _, _, used = RINGS[0]
        out = []
        while self.seen_used[0] != self.mem.read_u16(used + 2):
            slot = self.seen_used[0] % QSIZE
            head, length = struct.unpack("<II", self.mem.read(used + 4 + 8 * slot, 8))
            self.seen_used[0] += 1
            data = self.mem.read(RX_BUF + head * 0x800, length)
            assert data[:NET_HDR] == struct.pack("<BBHHHHH", 0, 0, 0, 0, 0, 0, 1)
            out.append(data[NET_HDR:])
            self.post_rx(head)
        self.dev.write(0x050, 4, 0)
        return out

    def tick(self, now: int) -> None:
        """What the VM does between guest instructions: run devices whose deadline passed."""
        self.now = now
        d = self.dev.next_deadline()
        if d is not None and d <= now:
            self.dev.advance(now)


def ping_frame(src: bytes, dst: bytes) -> bytes:
    return f.ethernet(dst, src, f.ETHERTYPE_IPV4, f.ipv4(f.ip_bytes("10.0.0.1"), f.ip_bytes("10.0.0.2"),
                                                         f.PROTO_ICMP, f.icmp_echo(8, 1, 1, b"x" * 32)))


def test_config_space_has_mac_link_up_and_mtu():
    drv = Driver()
    assert drv.config_mac() == MAC
    assert drv.dev.read(0x106, 2) == 1 and drv.dev.read(0x10A, 2) == 1500


def test_transmit_strips_the_header_and_hands_the_frame_to_the_uplink():
    drv = Driver()
    sent = []
    drv.dev.uplink = lambda fr, now: sent.append((fr, now))
    drv.init()
    drv.now = 1234
    fr = ping_frame(MAC, f.BROADCAST)
    drv.send(fr)
    assert sent == [(fr, 1234)]
    assert drv.mem.read_u16(RINGS[1][2] + 2) == 1          # the chain came back on the used ring
    assert drv.dev.counters()["tx_frames"] == 1 and drv.dev.counters()["tx_bytes"] == len(fr)


def test_a_frame_arrives_only_when_guest_time_reaches_it():
    drv = Driver()
    drv.init()
    fr = ping_frame(f.mac_bytes("52:54:00:00:00:02"), MAC)
    drv.dev.deliver(fr, 50_000)
    assert drv.dev.next_deadline() == 50_000
    drv.tick(49_999)
    assert drv.received() == [] and True not in drv.irq_levels
    drv.tick(50_000)
    assert drv.irq_levels[-1] is True and drv.dev.read(0x060, 4) == 1
    assert drv.received() == [fr]
    drv.dev.write(0x064, 4, 1)
    assert drv.irq_levels[-1] is False


def test_without_receive_buffers_frames_wait_then_flow_when_the_driver_refills():
    drv = Driver()
    drv.init(rx_buffers=0)
    frames = [ping_frame(f.mac_bytes(f"52:54:00:00:00:{i:02x}"), MAC) for i in range(3)]
    for fr in frames:
        drv.dev.deliver(fr, 10)
    drv.tick(100)
    assert drv.dev.next_deadline() is None                   # starved: no busy waiting
    drv.now = 200
    for i in range(2):
        drv.post_rx(i)
    drv.dev.write(0x050, 4, 0)                                # the driver says "new buffers"
    assert drv.received() == frames[:2]
    assert drv.received() == frames[2:]


def test_frames_for_a_nic_without_a_driver_are_dropped():
    drv = Driver()
    drv.dev.deliver(ping_frame(MAC, MAC), 0)
    assert drv.dev.counters()["drop_reasons"] == {"link down": 1}


def test_small_receive_buffer_and_header_less_transmit_are_counted_not_fatal():
    drv = Driver()
    drv.init(rx_buffers=0)
    drv.post_rx(0, size=40)
    drv.dev.write(0x050, 4, 0)
    drv.dev.deliver(ping_frame(MAC, MAC), 0)
    drv.tick(1)
    drv._offer(1, 0, TX_BUF, 4, 0)
    drv.dev.write(0x050, 4, 1)
    assert drv.dev.counters()["drop_reasons"] == {"rx buffer too small": 1, "tx without header": 1}
    assert not drv.dev.status & 64                            # no NEEDS_RESET: the device goes on


def test_two_nics_through_a_switch():
    sw = VirtualSwitch("sw0", latency_ns=10_000)
    a, b = Driver(f.mac_bytes("52:54:00:00:00:0a")), Driver(f.mac_bytes("52:54:00:00:00:0b"))
    for drv in (a, b):
        port = sw.attach(drv.dev.name, PortVlan.access(), drv.dev.deliver)
        drv.dev.uplink = lambda fr, now, n=port.number: sw.receive(n, fr, now)
        drv.init()
    fr = ping_frame(a.dev.mac, b.dev.mac)
    a.now = 5_000
    a.send(fr)
    b.tick(15_000)
    assert b.received() == [fr]
    reply = ping_frame(b.dev.mac, a.dev.mac)
    b.send(reply)
    a.tick(25_000)
    assert a.received() == [reply]
    assert [r["mac"] for r in sw.mac_rows()] == ["52:54:00:00:00:0a", "52:54:00:00:00:0b"]


def test_malformed_frames_from_a_guest_are_dropped_and_counted_and_the_path_survives():
    sw = VirtualSwitch("sw0")
    bad, good = Driver(f.mac_bytes("52:54:00:00:00:0a")), Driver(f.mac_bytes("52:54:00:00:00:0b"))
    ports = {}
    for drv, vlan in ((bad, PortVlan.access(10)), (good, PortVlan.access(10))):
        port = ports[drv] = sw.attach(drv.dev.name, vlan, drv.dev.deliver)
        drv.dev.uplink = lambda fr, now, n=port.number: sw.receive(n, fr, now)
        drv.init()
    src = bad.dev.mac
    bad.send(f.BROADCAST + src + b"\x08\x00" + bytes(6))                        # a 20-byte runt
    bad.send(f.ethernet(f.BROADCAST, src, 0x0800, bytes(1600)))                   # oversize
    bad.send(f.ethernet(f.BROADCAST, src, 0x0800, bytes(46), vlan=10))            # tagged, on an access port
    bad.send(f.BROADCAST + src + b"\x81\x00")                                      # cut inside its tag
    bad.send(f.ethernet(f.BROADCAST, f.BROADCAST, 0x0800, bytes(46)))             # a group source address
    assert ports[bad].drops == {"runt": 2, "oversize": 1, "tagged on access port": 1, "bad source": 1}
    good.tick(1_000_000)
    assert good.received() == []
    fine = ping_frame(src, good.dev.mac)
    bad.send(fine)
    good.tick(2_000_000)
    assert good.received() == [fine] and not bad.dev.status & 64


def test_a_rate_limited_nic_cannot_exceed_its_rate():
    sw = VirtualSwitch("sw0")
    a, b = Driver(f.mac_bytes("52:54:00:00:00:0a")), Driver(f.mac_bytes("52:54:00:00:00:0b"))
    for drv, limit in ((a, 8.0), (b, None)):                     # 8 Mbit/s = 1,000,000 bytes/s
        port = sw.attach(drv.dev.name, PortVlan.access(), drv.dev.deliver, rate_limit_mbit=limit)
        drv.dev.uplink = lambda fr, now, n=port.number: sw.receive(n, fr, now)
        drv.init(rx_buffers=8)
    big = f.ethernet(b.dev.mac, a.dev.mac, 0x88B5, bytes(1500))
    delivered = 0
    for step in range(200):                                      # offer 1514 bytes every 0.5 ms: 24 Mbit/s
        a.now = step * 500_000
        a.send(big)
        b.tick(a.now + 20_000)
        delivered += sum(len(fr) for fr in b.received())
    seconds = 200 * 500_000 / 1e9
    burst = sw.ports[1].limiter.burst
    assert 0.9 * 1_000_000 * seconds <= delivered <= burst + 1_000_000 * seconds
