"""The switching function and the MAC table of a learning Ethernet switch.

``decide`` is the whole algorithm of a transparent bridge (IEEE 802.1D/802.1Q), in
the order a real switch applies it to each frame arriving on a port:

1. check the frame: a runt (under 60 bytes) or an oversize frame is dropped;
2. find its VLAN (``vlan.classify``): an access port's VLAN, or the frame's tag;
3. learn: the source MAC lives behind the ingress port, in that VLAN;
4. forward: a known unicast destination goes to its one port (or nowhere, if it is
   the port the frame came from); broadcast, multicast and unknown unicast are
   flooded to every other port of the VLAN. No frame ever leaves its VLAN.

The MAC table forgets an address not seen for the ageing time (300 s of guest time
by default, as the Linux bridge), so a moved or silent host is flooded to again.
``decide`` touches nothing but the table it is given; ``vswitch.py`` wraps it with
ports, counters, rate limits, the mirror port, captures and events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from sandbox.net.frames import MAX_FRAME, MIN_FRAME, VLAN_TAG, is_multicast, mac_text, parse
from sandbox.net.vlan import PortVlan, classify, strip

DEFAULT_AGEING_S = 300
MAC_TABLE_SIZE = 1024

# Why a frame was dropped (decision "dropped"), one line each for the GUI and lessons.
DROP_REASONS: dict[str, str] = {
    "runt": "Shorter than the 60-byte Ethernet minimum.",
    "oversize": "Longer than 1514 bytes (1518 with a VLAN tag): more than the 1500-byte MTU.",
    "bad tag": "The 802.1Q tag is unreadable or uses the reserved VLAN id 4095.",
    "tagged on access port": "An access port takes untagged frames only.",
    "untagged on trunk": "This trunk has no native VLAN for untagged frames.",
    "vlan not allowed": "The frame's VLAN is not carried by this trunk.",
    "bad source": "The source address is a group (multicast) address, which no NIC may send from.",
    "same port": "The destination is behind the port the frame came in on: filtered.",
    "port down": "The destination port's NIC is not running.",
    "rate limit": "The port's token bucket was empty: the sender is over its rate limit.",
    "mirror port": "A mirror (SPAN) port only listens; what its NIC sends is dropped.",
    "no vlan members": "No other port is a member of the frame's VLAN.",
}


class Port(Protocol):
    """What the switching function needs to know about a port."""
    number: int
    vlan: PortVlan
    mirror: bool

    @property
    def up(self) -> bool: ...


@dataclass
class MacEntry:
    port: int
    last_seen_ns: int


@dataclass(frozen=True)
class Decision:
    in_port: int
    action: str                       # "forwarded", "flooded", "filtered" or "dropped"
    reason: str | None = None         # a key of DROP_REASONS when dropped or filtered
    vlan: int | None = None
    out_ports: tuple[int, ...] = ()
    learned: str | None = None        # "learned", "moved", "table full" or None (already known)
    frame: bytes = b""                # untagged, as kept inside the switch
    pcp: int = 0
    src: bytes = b""
    dst: bytes = b""


class MacTable:
    """(VLAN, MAC) -> port and when it was last seen. One table for all VLANs, keyed
    by both (independent VLAN learning, as 802.1Q switches do)."""

    def __init__(self, ageing_ns: int = DEFAULT_AGEING_S * 1_000_000_000, capacity: int = MAC_TABLE_SIZE) -> None:
        self.ageing_ns = ageing_ns
        self.capacity = capacity
        self.entries: dict[tuple[int, bytes], MacEntry] = {}
        self.aged_out = 0

    def learn(self, vid: int, mac: bytes, port: int, now_ns: int) -> str | None:
        entry = self.entries.get((vid, mac))
        if entry is not None and now_ns - entry.last_seen_ns <= self.ageing_ns:
            moved = entry.port != port
            entry.port, entry.last_seen_ns = port, now_ns
            return "moved" if moved else None
        if entry is None and len(self.entries) >= self.capacity:
            self.expire(now_ns)
            if len(self.entries) >= self.capacity:
                return "table full"
        self.entries[(vid, mac)] = MacEntry(port, now_ns)
        return "learned"

    def lookup(self, vid: int, mac: bytes, now_ns: int) -> int | None:
        entry = self.entries.get((vid, mac))
        if entry is None:
            return None
        if now_ns - entry.last_seen_ns > self.ageing_ns:
            del self.entries[(vid, mac)]
            self.aged_out += 1
            return None
        return entry.port

    def expire(self, now_ns: int) -> int:
        old = [k for k, e in self.entries.items() if now_ns - e.last_seen_ns > self.ageing_ns]
        for key in old:
            del self.entries[key]
        self.aged_out += len(old)
        return len(old)

    def forget_port(self, port: int) -> None:
        for key in [k for k, e in self.entries.items() if e.port == port]:
            del self.entries[key]

    def rows(self, now_ns: int) -> list[dict]:
        self.expire(now_ns)
        return [{"mac": mac_text(mac), "vlan": vid, "port": e.port, "age_s": (now_ns - e.last_seen_ns) / 1e9}
                for (vid, mac), e in sorted(self.entries.items(), key=lambda kv: (kv[0][0], kv[0][1]))]


def _check(frame: bytes) -> tuple[object | None, str | None]:
    if len(frame) < MIN_FRAME:
        return None, "runt"
    eth = parse(frame)
    if eth is None:
        return None, "bad tag"
    if len(frame) > MAX_FRAME + (VLAN_TAG if eth.vlan is not None else 0):
        return None, "oversize"
    return eth, None


def decide(table: MacTable, ports: Mapping[int, Port], in_port: int, frame: bytes, now_ns: int,
           learn: bool = True) -> Decision:
    """Where does ``frame``, arriving on port ``in_port`` at ``now_ns``, go?
    With ``learn=False`` the table is not changed (to answer "which ports will it reach?")."""
    eth, problem = _check(frame)
    if eth is None:
        return Decision(in_port, "dropped", problem)
    ingress = ports[in_port]
    if ingress.mirror:
        return Decision(in_port, "dropped", "mirror port", src=eth.src, dst=eth.dst)
    vid, problem = classify(ingress.vlan, eth)
    if vid is None:
        return Decision(in_port, "dropped", problem, eth.vlan, src=eth.src, dst=eth.dst)
    inner = strip(frame, eth)
    if is_multicast(eth.src):
        return Decision(in_port, "dropped", "bad source", vid, frame=inner, src=eth.src, dst=eth.dst)
    learned = table.learn(vid, eth.src, in_port, now_ns) if learn else None
    known = None if is_multicast(eth.dst) else table.lookup(vid, eth.dst, now_ns)
    common = dict(vlan=vid, learned=learned, frame=inner, pcp=eth.pcp, src=eth.src, dst=eth.dst)
    if known is not None:
        if known == in_port:
            return Decision(in_port, "filtered", "same port", **common)
        if not ports[known].up:
            return Decision(in_port, "dropped", "port down", out_ports=(known,), **common)
        return Decision(in_port, "forwarded", out_ports=(known,), **common)
    members = tuple(p.number for p in ports.values()
                    if p.number != in_port and not p.mirror and p.up and p.vlan.member(vid))
    if not members:
        return Decision(in_port, "dropped", "no vlan members", **common)
    return Decision(in_port, "flooded", out_ports=members, **common)
