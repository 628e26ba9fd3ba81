"""The virtual switch, driven with hand-made frames: learning, ageing, flooding, VLANs,
the mirror port, rate limits, malformed frames and events."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sandbox.events import EventBus, EventRecorder
from sandbox.net import frames as f
from sandbox.net.switch import DROP_REASONS, MacTable
from sandbox.net.vlan import PortVlan
from sandbox.net.vswitch import NetworkError, VirtualSwitch

SEC = 1_000_000_000


def mac(n: int) -> bytes:
    return bytes((0x52, 0x54, 0, 0, 0, n))


def frame(dst: bytes, src: bytes, vlan: int | None = None, size: int = 60) -> bytes:
    header = 14 if vlan is None else 18
    return f.ethernet(dst, src, 0x88B5, bytes(size - header), vlan=vlan)   # 0x88B5: "local experimental"


class Nic:
    """A switch port with a recorder behind it."""

    def __init__(self, switch: VirtualSwitch, name: str, vlan: PortVlan | None = None, **kw) -> None:
        self.got: list[tuple[bytes, int]] = []
        self.port = switch.attach(name, vlan or PortVlan.access(), lambda fr, at: self.got.append((fr, at)), **kw)
        self.switch = switch

    def send(self, fr: bytes, now: int = 0):
        return self.switch.receive(self.port.number, fr, now)

    def frames(self) -> list[bytes]:
        return [fr for fr, _ in self.got]


def lan(n: int = 3, **kw) -> tuple[VirtualSwitch, list[Nic]]:
    sw = VirtualSwitch("sw0", **kw)
    return sw, [Nic(sw, f"vm{i}") for i in range(n)]


def test_unknown_unicast_floods_then_stops_once_learned():
    sw, (a, b, c) = lan()
    d = a.send(frame(mac(2), mac(1)))
    assert d.action == "flooded" and d.out_ports == (b.port.number, c.port.number)
    assert d.learned == "learned"
    d = b.send(frame(mac(1), mac(2)))               # b answers: a's MAC is known
    assert d.action == "forwarded" and d.out_ports == (a.port.number,)
    d = a.send(frame(mac(2), mac(1)))               # and now b's is known too
    assert d.action == "forwarded" and d.out_ports == (b.port.number,)
    assert len(c.frames()) == 1                     # c saw only the first, flooded frame


def test_broadcast_goes_everywhere_but_back():
    sw, (a, b, c) = lan()
    sw.receive(a.port.number, frame(f.BROADCAST, mac(1)), 0)
    sw.receive(a.port.number, frame(f.BROADCAST, mac(1)), 0)
    assert len(a.got) == 0 and len(b.got) == 2 and len(c.got) == 2


def test_mac_table_learns_with_ages_and_forgets_after_the_ageing_time():
    sw, (a, b, _) = lan(ageing_s=300)
    a.send(frame(f.BROADCAST, mac(1)), now=1 * SEC)
    b.send(frame(f.BROADCAST, mac(2)), now=101 * SEC)
    rows = sw.mac_rows()
    assert [(r["mac"], r["vlan"], r["port"], r["age_s"]) for r in rows] == [
        ("52:54:00:00:00:01", 1, 1, 100.0), ("52:54:00:00:00:02", 1, 2, 0.0)]
    assert b.send(frame(mac(1), mac(2)), now=300 * SEC).action == "forwarded"
    d = b.send(frame(mac(1), mac(2)), now=302 * SEC)          # 301 s since a was last heard
    assert d.action == "flooded" and sw.table.aged_out == 1
    assert [r["mac"] for r in sw.mac_rows()] == ["52:54:00:00:00:02"]


def test_a_moved_station_is_relearned():
    sw, (a, b, c) = lan()
    a.send(frame(f.BROADCAST, mac(1)))
    assert c.send(frame(f.BROADCAST, mac(1))).learned == "moved"
    assert b.send(frame(mac(1), mac(2))).out_ports == (c.port.number,)


def test_frame_to_its_own_port_is_filtered():
    sw, (a, b, _) = lan()
    a.send(frame(f.BROADCAST, mac(1)))
    a.send(frame(f.BROADCAST, mac(9)))               # two stations behind port 1
    d = a.send(frame(mac(9), mac(1)))
    assert d.action == "filtered" and d.reason == "same port" and not b.got[2:]


def test_access_vlans_are_separate_broadcast_domains():
    sw = VirtualSwitch("sw0")
    a, b = Nic(sw, "a", PortVlan.access(10)), Nic(sw, "b", PortVlan.access(20))
    a2 = Nic(sw, "a2", PortVlan.access(10))
    a.send(frame(f.BROADCAST, mac(1)))
    b.send(frame(f.BROADCAST, mac(2)))
    assert len(a2.got) == 1 and not b.got[:0] and len(a.got) == 0
    d = b.send(frame(mac(1), mac(2)))                # b knows a's MAC: still unreachable
    assert d.action == "dropped" and d.reason == "no vlan members" and len(a.got) == 0


def test_trunk_tags_on_egress_and_untags_for_access_ports():
    sw = VirtualSwitch("sw0")
    web, db = Nic(sw, "web", PortVlan.access(10)), Nic(sw, "db", PortVlan.access(20))
    router = Nic(sw, "router", PortVlan.trunk([10, 20]))
    web.send(frame(f.BROADCAST, mac(1)))
    tagged = f.parse(router.frames()[0])
    assert tagged.vlan == 10 and len(router.frames()[0]) == 64
    router.send(frame(mac(1), mac(7), vlan=10, size=64))
    assert f.parse(web.frames()[0]).vlan is None and len(web.frames()[0]) == 60
    assert db.got == []
    router.send(frame(f.BROADCAST, mac(7), vlan=20, size=64))
    assert len(db.got) == 1 and len(web.got) == 1


@pytest.mark.parametrize("port_vlan, fr, reason", [
    (PortVlan.access(10), frame(f.BROADCAST, mac(1), vlan=10, size=64), "tagged on access port"),
    (PortVlan.trunk([10]), frame(f.BROADCAST, mac(1)), "untagged on trunk"),
    (PortVlan.trunk([10]), frame(f.BROADCAST, mac(1), vlan=30, size=64), "vlan not allowed"),
    (PortVlan.trunk([10]), frame(f.BROADCAST, mac(1), vlan=4095, size=64), "bad tag"),
    (PortVlan.access(), frame(f.BROADCAST, mac(1))[:59], "runt"),
    (PortVlan.access(), frame(f.BROADCAST, mac(1))[:5], "runt"),
    (PortVlan.access(), frame(f.BROADCAST, mac(1), size=1515), "oversize"),
    (PortVlan.trunk([10]), frame(f.BROADCAST, mac(1), vlan=10, size=1519), "oversize"),
    (PortVlan.access(), b"\xff" * 12 + b"\x81\x00" + bytes(2) + b"", "runt"),
    (PortVlan.access(), frame(mac(2), f.BROADCAST), "bad source"),
])
def test_malformed_frames_are_dropped_and_counted(port_vlan, fr, reason):
    sw = VirtualSwitch("sw0")
    bad, other = Nic(sw, "bad", port_vlan), Nic(sw, "other", PortVlan.trunk([10], native=1))
    d = bad.send(fr)
    assert d.action == "dropped" and d.reason == reason and reason in DROP_REASONS
    assert bad.port.drops == {reason: 1} and other.got == []


def test_a_tagged_frame_cut_inside_its_tag_is_not_a_crash():
    sw = VirtualSwitch("sw0")
    nic = Nic(sw, "a", PortVlan.trunk([10]))
    for n in range(0, 70):
        nic.send((b"\xff" * 6 + mac(1) + b"\x81\x00" + b"\x00\x0a" + b"\x08\x00" + bytes(60))[:n])
    assert nic.port.drops == {"runt": 60, "no vlan members": 10} and nic.port.rx_frames == 70


def test_mirror_port_sees_both_directions_and_cannot_send():
    sw = VirtualSwitch("sw0", mirror_to="monitor")
    a, b = Nic(sw, "a"), Nic(sw, "b")
    mon = Nic(sw, "monitor")
    a.send(frame(mac(2), mac(1)))
    b.send(frame(mac(1), mac(2)))
    assert [f.parse(fr).src for fr in mon.frames()] == [mac(1), mac(2)]
    assert len(a.got) == 1 and len(b.got) == 1          # the flood did not count the monitor
    assert mon.send(frame(mac(1), mac(3))).reason == "mirror port" and a.got[1:] == []


def test_mirror_port_tags_frames_of_other_vlans():
    sw = VirtualSwitch("sw0", mirror_to="monitor")
    a, b = Nic(sw, "a", PortVlan.access(10)), Nic(sw, "b", PortVlan.access(10))
    mon = Nic(sw, "monitor")
    a.send(frame(mac(2), mac(1)))
    assert f.parse(mon.frames()[0]).vlan == 10 and len(b.got) == 1


def test_rate_limit_holds_over_any_interval():
    sw = VirtualSwitch("sw0")
    a = Nic(sw, "a", rate_limit_mbit=1.0)               # 125,000 bytes per second
    b = Nic(sw, "b")
    for i in range(2000):                                # 1514-byte frames every 100 us: 121 Mbit/s offered
        a.send(frame(f.BROADCAST, mac(1), size=1514), now=i * 100_000)
    passed = sum(len(fr) for fr in b.frames())
    seconds = 2000 * 100_000 / SEC
    assert passed <= a.port.limiter.burst + 125_000 * seconds
    assert passed >= 0.9 * 125_000 * seconds
    assert a.port.drops["rate limit"] > 1800


def test_frames_arrive_after_the_wire_latency():
    sw, (a, b, _) = lan(latency_ns=25_000)
    a.send(frame(f.BROADCAST, mac(1)), now=1_000)
    assert b.got[0][1] == 26_000


def test_out_of_ports():
    sw = VirtualSwitch("sw0", ports=2)
    Nic(sw, "a"), Nic(sw, "b")
    with pytest.raises(NetworkError, match="all 2 ports"):
        Nic(sw, "c")


def test_predict_answers_which_ports_without_learning():
    sw, (a, b, c) = lan()
    assert sw.predict(a.port.number, frame(mac(2), mac(1))).out_ports == (2, 3)
    assert sw.mac_rows() == []
    b.send(frame(f.BROADCAST, mac(2)))
    assert sw.predict(a.port.number, frame(mac(2), mac(1))).out_ports == (2,)


def test_every_frame_is_an_event():
    bus = EventBus()
    rec = EventRecorder(bus, ["net.frame"])
    sw = VirtualSwitch("sw0", publish=bus.publish, wants=bus.wants)
    a, b = Nic(sw, "web"), Nic(sw, "db")
    arp = f.ethernet(f.BROADCAST, mac(1), f.ETHERTYPE_ARP,
                     f.arp(1, mac(1), f.ip_bytes("10.0.0.1"), bytes(6), f.ip_bytes("10.0.0.2")))
    a.send(arp, now=5)
    a.send(b"short", now=6)
    first, second = rec.events
    assert first.vm == "web" and first.time_ns == 5
    assert first.data["decision"] == "flooded" and first.data["out_names"] == ["db"]
    assert first.data["learned"] == "learned" and first.data["vlan"] == 1
    assert first.data["summary"] == "ARP who-has 10.0.0.2 tell 10.0.0.1"
    assert second.data["decision"] == "dropped" and second.data["reason"] == "runt"


def test_mac_table_capacity_is_bounded():
    table = MacTable(capacity=4)
    assert [table.learn(1, mac(i), 1, 0) for i in range(6)] == ["learned"] * 4 + ["table full"] * 2


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1600), st.sampled_from([PortVlan.access(), PortVlan.access(10),
                                                  PortVlan.trunk([10, 20]), PortVlan.trunk([10], native=1)]))
def test_any_bytes_at_all_get_a_decision_never_an_exception(data, vlan):
    sw = VirtualSwitch("sw0")
    a = Nic(sw, "a", vlan)
    Nic(sw, "b", PortVlan.trunk([10, 20], native=1))
    d = a.send(data)
    assert d.action in ("forwarded", "flooded", "filtered", "dropped")
    assert d.action != "dropped" or d.reason in DROP_REASONS
