"""A virtual switch: numbered ports around the switching function of ``switch.py``.

What a port adds to the pure decision: per-port counters (frames, bytes, drops by
reason), a token-bucket rate limit on what the port's NIC sends (ingress policing),
the mirror (SPAN) port that gets a copy of every frame the switch accepts, packet
captures, one ``net.frame`` event per frame, and the wire's latency.

Timing: a frame enters the switch at the sender's guest time and is handed to each
output port with ``at_ns = now + latency``. The receiving NIC keeps it until its own
VM's guest time reaches ``at_ns`` (a device deadline), so no VM ever writes into
another VM's memory while that VM runs: delivery is deterministic.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from sandbox.errors import SandboxError
from sandbox.net.frames import describe, mac_text
from sandbox.net.pcap import PcapWriter
from sandbox.net.rate_limit import TokenBucket
from sandbox.net.switch import DEFAULT_AGEING_S, Decision, MacTable, decide
from sandbox.net.vlan import PortVlan, egress

DEFAULT_LATENCY_NS = 10_000          # 10 us from one NIC to another: wire plus switch

Deliver = Callable[[bytes, int], None]           # (frame, guest time it arrives)


class NetworkError(SandboxError):
    """A switch or NIC problem the user caused (no free port, unknown switch, ...)."""


def _nothing(*_a: Any, **_k: Any) -> None:
    return None


class SwitchPort:
    def __init__(self, number: int, name: str, vlan: PortVlan, deliver: Deliver,
                 limiter: TokenBucket | None, mirror: bool, link_up: Callable[[], bool]) -> None:
        self.number = number
        self.name = name                  # what is plugged in (the VM's name)
        self.vlan = vlan
        self.deliver = deliver
        self.limiter = limiter
        self.mirror = mirror
        self._link_up = link_up
        self.rx_frames = self.rx_bytes = self.tx_frames = self.tx_bytes = 0
        self.drops: Counter[str] = Counter()

    @property
    def up(self) -> bool:
        return self._link_up()

    def send_to_device(self, frame: bytes, at_ns: int) -> None:
        self.tx_frames += 1
        self.tx_bytes += len(frame)
        self.deliver(frame, at_ns)

    def state(self) -> dict[str, Any]:
        return {"port": self.number, "name": self.name, "vlan": self.vlan.describe(), "mirror": self.mirror,
                "up": self.up, "rx_frames": self.rx_frames, "rx_bytes": self.rx_bytes,
                "tx_frames": self.tx_frames, "tx_bytes": self.tx_bytes, "drops": dict(sorted(self.drops.items())),
                "rate_limit": self.limiter.state() if self.limiter else None}


class VirtualSwitch:
    def __init__(self, name: str, ports: int = 8, ageing_s: float = DEFAULT_AGEING_S,
                 latency_ns: int = DEFAULT_LATENCY_NS, mirror_to: str | None = None,
                 publish: Callable[..., Any] = _nothing, wants: Callable[[str], bool] = lambda k: False) -> None:
        self.name = name
        self.capacity = ports
        self.latency_ns = latency_ns
        self.mirror_to = mirror_to
        self.table = MacTable(int(ageing_s * 1_000_000_000))
        self.ports: dict[int, SwitchPort] = {}
        self.captures: list[PcapWriter] = []
        self.decisions: Counter[str] = Counter()
        self.now_ns = 0
        self._publish = publish
        self._wants = wants

    # --- wiring --------------------------------------------------------------------------
    def attach(self, name: str, vlan: PortVlan, deliver: Deliver, rate_limit_mbit: float | None = None,
               link_up: Callable[[], bool] = lambda: True) -> SwitchPort:
        """Plug something in: the next free port (numbered from 1, as on a real switch)."""
        if len(self.ports) >= self.capacity:
            raise NetworkError(f"switch {self.name}: all {self.capacity} ports are in use")
        mirror = name == self.mirror_to
        if mirror:
            vlan = PortVlan(untagged=vlan.untagged, every_vlan=True)
        limiter = TokenBucket(rate_limit_mbit) if rate_limit_mbit else None
        port = SwitchPort(len(self.ports) + 1, name, vlan, deliver, limiter, mirror, link_up)
        self.ports[port.number] = port
        return port

    def capture(self, writer: PcapWriter) -> None:
        """Record every frame that enters the switch, as it was on the wire."""
        self.captures.append(writer)

    @property
    def mirror_port(self) -> SwitchPort | None:
        return next((p for p in self.ports.values() if p.mirror), None)

    # --- the data path -----------------------------------------------------------------------
    def receive(self, in_port: int, frame: bytes, now_ns: int) -> Decision:
        """A frame arrives on ``in_port`` at the sender's guest time ``now_ns``."""
        now = self.now_ns = max(self.now_ns, now_ns)
        port = self.ports[in_port]
        port.rx_frames += 1
        port.rx_bytes += len(frame)
        for writer in self.captures:
            writer.write(now, frame)
        if port.limiter is not None and not port.limiter.allow(len(frame), now):
            decision = Decision(in_port, "dropped", "rate limit")
        else:
            decision = decide(self.table, self.ports, in_port, frame, now)
        self.decisions[decision.action] += 1
        if decision.reason is not None:
            port.drops[decision.reason] += 1
        at = now + self.latency_ns
        if decision.action in ("forwarded", "flooded"):
            for number in decision.out_ports:
                out = self.ports[number]
                data = egress(out.vlan, decision.vlan, decision.frame, decision.pcp)
                if data is not None:
                    out.send_to_device(data, at)
        mirrored = self._mirror(decision, at)
        if self._wants("net.frame"):
            self._event(port, frame, decision, mirrored, now)
        return decision

    def _mirror(self, decision: Decision, at: int) -> bool:
        mirror = self.mirror_port
        if mirror is None or not mirror.up or decision.vlan is None or not decision.frame:
            return False
        if decision.action not in ("forwarded", "flooded", "filtered"):
            return False
        data = egress(mirror.vlan, decision.vlan, decision.frame, decision.pcp)
        if data is None:
            return False
        mirror.send_to_device(data, at)
        return True

    def _event(self, port: SwitchPort, frame: bytes, d: Decision, mirrored: bool, now: int) -> None:
        self._publish("net.frame", vm=port.name, time_ns=now, switch=self.name, in_port=port.number,
                      in_name=port.name, out_ports=list(d.out_ports),
                      out_names=[self.ports[n].name for n in d.out_ports], vlan=d.vlan, decision=d.action,
                      reason=d.reason, learned=d.learned, src=mac_text(d.src) if d.src else None,
                      dst=mac_text(d.dst) if d.dst else None, length=len(frame), mirrored=mirrored,
                      summary=describe(frame))

    def predict(self, in_port: int, frame: bytes) -> Decision:
        """Which ports would ``frame`` reach if it arrived on ``in_port`` now? (Nothing is
        learned or counted: the question lessons ask.)"""
        return decide(self.table, self.ports, in_port, frame, self.now_ns, learn=False)

    # --- inspection ---------------------------------------------------------------------------
    def mac_rows(self, now_ns: int | None = None) -> list[dict[str, Any]]:
        """The MAC table with ages at ``now_ns`` (default: the last frame's time)."""
        if now_ns is not None:
            self.now_ns = max(self.now_ns, now_ns)
        rows = self.table.rows(self.now_ns)
        for row in rows:
            row["port_name"] = self.ports[row["port"]].name if row["port"] in self.ports else None
        return rows

    def state(self, now_ns: int | None = None) -> dict[str, Any]:
        rows = self.mac_rows(now_ns)
        return {"name": self.name, "ports": self.capacity, "ageing_s": self.table.ageing_ns / 1e9,
                "latency_us": self.latency_ns / 1000, "mirror_to": self.mirror_to,
                "time_seconds": self.now_ns / 1e9, "decisions": dict(sorted(self.decisions.items())),
                "aged_out": self.table.aged_out, "port_list": [p.state() for p in self.ports.values()],
                "mac_table": rows}

    def close(self) -> None:
        for writer in self.captures:
            writer.close()
