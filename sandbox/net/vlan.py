"""802.1Q VLANs on a switch port: which VLAN a frame belongs to, and how it leaves.

Inside the switch every frame is kept untagged, with its VLAN id beside it (as the
Linux bridge does). A port decides both ends of that:

* ingress (``classify``): an untagged frame joins the port's untagged VLAN (an access
  port's VLAN, or a trunk's native VLAN); a tagged frame joins the VLAN in its tag,
  if the port carries that VLAN tagged. Anything else is dropped, with the reason.
* egress (``egress``): the frame leaves untagged on the port's untagged VLAN, with a
  tag on the port's tagged VLANs, and not at all on a port that is not a member.

An access port is ``PortVlan(untagged=10)``; a trunk ``PortVlan(tagged={10, 20})``;
a mirror (SPAN) port carries every VLAN (``every_vlan=True``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.net.frames import Ethernet, tag, untag

DEFAULT_VLAN = 1               # the VLAN of an access port that names none (as on most switches)
RESERVED_VID = 4095


@dataclass(frozen=True)
class PortVlan:
    untagged: int | None = DEFAULT_VLAN            # access VLAN, or a trunk's native VLAN
    tagged: frozenset[int] = field(default_factory=frozenset)
    every_vlan: bool = False                       # a mirror port: every VLAN, tagged

    @classmethod
    def access(cls, vid: int = DEFAULT_VLAN) -> "PortVlan":
        return cls(untagged=vid)

    @classmethod
    def trunk(cls, vids: list[int] | frozenset[int], native: int | None = None) -> "PortVlan":
        return cls(untagged=native, tagged=frozenset(vids))

    @property
    def is_trunk(self) -> bool:
        return bool(self.tagged)

    def describe(self) -> str:
        if self.every_vlan:
            return "mirror (every VLAN)"
        if self.tagged:
            native = f", native {self.untagged}" if self.untagged is not None else ""
            return f"trunk {','.join(map(str, sorted(self.tagged)))}{native}"
        return f"access {self.untagged}"

    def member(self, vid: int) -> bool:
        return self.every_vlan or vid == self.untagged or vid in self.tagged


def classify(port: PortVlan, eth: Ethernet) -> tuple[int | None, str | None]:
    """(VLAN id, None) for a frame this port accepts, else (None, drop reason)."""
    vid = eth.vlan
    if vid is None or vid == 0:                    # VID 0: a priority tag, still "untagged"
        if port.untagged is None:
            return None, "untagged on trunk"
        return port.untagged, None
    if vid == RESERVED_VID:
        return None, "bad tag"
    if not port.tagged:
        return None, "tagged on access port"
    if vid not in port.tagged:
        return None, "vlan not allowed"
    return vid, None


def strip(frame: bytes, eth: Ethernet) -> bytes:
    """The frame without its tag, as the switch keeps it inside."""
    return untag(frame) if eth.vlan is not None else frame


def egress(port: PortVlan, vid: int, frame: bytes, pcp: int = 0) -> bytes | None:
    """The bytes that leave ``port`` for a frame of VLAN ``vid``, or None if the port is
    not a member of that VLAN."""
    if vid == port.untagged:
        return frame
    if vid in port.tagged or port.every_vlan:
        return tag(frame, vid, pcp)
    return None
