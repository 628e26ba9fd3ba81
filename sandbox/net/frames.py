"""Ethernet frames and the protocols inside them, as bytes on the wire.

Builders make real frames (for tests and lessons); ``parse`` and ``describe`` read
them back (for the switch's events and for the GUI). Layouts:

    Ethernet  dst MAC (6) | src MAC (6) | [0x8100 | PCP:3 DEI:1 VID:12] | EtherType (2) | payload
    ARP       htype 1 | ptype 0x0800 | hlen 6 | plen 4 | op | sender MAC, IP | target MAC, IP
    IPv4      ver/IHL | TOS | total length | id | flags/fragment | TTL | proto | checksum | src | dst
    ICMP      type | code | checksum | id | sequence | data          (echo: type 8, reply: type 0)
    UDP       src port | dst port | length | checksum | data

References: IEEE 802.3 / 802.1Q, RFC 826 (ARP), RFC 791 (IPv4), RFC 792 (ICMP),
RFC 768 (UDP), RFC 1071 (the Internet checksum).
"""
from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass

from sandbox.errors import SandboxError

ETH_HEADER = 14
VLAN_TAG = 4
MIN_FRAME = 60                 # without the 4-byte FCS, which virtual NICs never carry
MAX_FRAME = 1514               # 1500 bytes of payload (the MTU) + the header
TPID_8021Q = 0x8100
ETHERTYPE_IPV4, ETHERTYPE_ARP = 0x0800, 0x0806
PROTO_ICMP, PROTO_UDP = 1, 17
ICMP_ECHO_REPLY, ICMP_ECHO_REQUEST = 0, 8
ARP_REQUEST, ARP_REPLY = 1, 2
BROADCAST = b"\xff" * 6


class BadAddress(SandboxError):
    """A MAC or IP address that does not parse."""


# --- addresses -------------------------------------------------------------------------
def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    try:
        raw = bytes(int(p, 16) for p in parts)
    except ValueError:
        raw = b""
    if len(parts) != 6 or len(raw) != 6 or any(len(p) != 2 for p in parts):
        raise BadAddress(f"'{text}' is not a MAC address (like 52:54:00:12:34:56)")
    return raw


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def is_multicast(mac: bytes) -> bool:
    """Group addresses (broadcast included) have the lowest bit of the first byte set."""
    return bool(mac[0] & 1)


def generated_mac(name: str) -> str:
    """A stable MAC for a NIC the config gives none: QEMU's 52:54:00 prefix and three
    bytes of the CRC-32 of ``name``, so every run of the same config agrees."""
    crc = zlib.crc32(name.encode())
    return mac_text(bytes((0x52, 0x54, 0x00, (crc >> 16) & 0xFF, (crc >> 8) & 0xFF, crc & 0xFF)))


def ip_bytes(text: str) -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except ValueError:
        raise BadAddress(f"'{text}' is not an IPv4 address") from None


def ip_text(raw: bytes) -> str:
    return str(ipaddress.IPv4Address(raw))


def checksum(data: bytes) -> int:
    """The Internet checksum: one's complement of the one's complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# --- Ethernet and 802.1Q ----------------------------------------------------------------
@dataclass(frozen=True)
class Ethernet:
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes
    vlan: int | None = None    # the VID of an 802.1Q tag, None if untagged
    pcp: int = 0               # the tag's priority


def parse(frame: bytes) -> Ethernet | None:
    """The Ethernet header of ``frame`` (None if it is too short to have one)."""
    if len(frame) < ETH_HEADER:
        return None
    dst, src, ethertype = frame[:6], frame[6:12], int.from_bytes(frame[12:14], "big")
    if ethertype == TPID_8021Q:
        if len(frame) < ETH_HEADER + VLAN_TAG:
            return None
        tci, ethertype = struct.unpack("!HH", frame[14:18])
        return Ethernet(dst, src, ethertype, frame[18:], tci & 0xFFF, tci >> 13)
    return Ethernet(dst, src, ethertype, frame[14:])


def pad(frame: bytes) -> bytes:
    """Short frames are padded with zeros to the 60-byte minimum, as a NIC does."""
    return frame + bytes(MIN_FRAME - len(frame)) if len(frame) < MIN_FRAME else frame


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None = None,
             pcp: int = 0) -> bytes:
    frame = dst + src + struct.pack("!H", ethertype) + payload
    return tag(pad(frame), vlan, pcp) if vlan is not None else pad(frame)


def tag(frame: bytes, vid: int, pcp: int = 0) -> bytes:
    """Insert an 802.1Q tag after the source MAC (what a trunk port does on egress)."""
    return frame[:12] + struct.pack("!HH", TPID_8021Q, (pcp << 13) | vid) + frame[12:]


def untag(frame: bytes) -> bytes:
    """Remove the 802.1Q tag (what an access port does on egress), keeping 60 bytes."""
    return pad(frame[:12] + frame[16:])


# --- ARP ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arp:
    op: int
    sender_mac: bytes
    sender_ip: bytes
    target_mac: bytes
    target_ip: bytes


def arp(op: int, sender_mac: bytes, sender_ip: bytes, target_mac: bytes, target_ip: bytes) -> bytes:
    return struct.pack("!HHBBH", 1, ETHERTYPE_IPV4, 6, 4, op) + sender_mac + sender_ip + target_mac + target_ip


def parse_arp(payload: bytes) -> Arp | None:
    if len(payload) < 28 or payload[:6] != b"\x00\x01\x08\x00\x06\x04":
        return None
    op = int.from_bytes(payload[6:8], "big")
    return Arp(op, payload[8:14], payload[14:18], payload[18:24], payload[24:28])


# --- IPv4, ICMP, UDP ----------------------------------------------------------------------
@dataclass(frozen=True)
class Ipv4:
    src: bytes
    dst: bytes
    proto: int
    ttl: int
    payload: bytes
    checksum_ok: bool


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, ttl: int = 64, ident: int = 0) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, ttl, proto, 0, src, dst)
    return header[:10] + struct.pack("!H", checksum(header)) + header[12:] + payload


def parse_ipv4(payload: bytes) -> Ipv4 | None:
    if len(payload) < 20 or payload[0] >> 4 != 4:
        return None
    ihl = (payload[0] & 0xF) * 4
    total = int.from_bytes(payload[2:4], "big")
    if ihl < 20 or total < ihl or total > len(payload):
        return None
    return Ipv4(payload[12:16], payload[16:20], payload[9], payload[8], payload[ihl:total],
                checksum(payload[:ihl]) == 0)


def icmp_echo(kind: int, ident: int, seq: int, data: bytes = b"") -> bytes:
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def udp(src_port: int, dst_port: int, data: bytes) -> bytes:
    """A UDP datagram with checksum 0 ("not computed", allowed over IPv4)."""
    return struct.pack("!HHHH", src_port, dst_port, 8 + len(data), 0) + data


# --- one line per frame, for events, the GUI and ``sandbox switch`` ------------------------
def describe(frame: bytes) -> str:
    eth = parse(frame)
    if eth is None:
        return f"runt ({len(frame)} bytes)"
    describer = _DESCRIBERS.get(eth.ethertype)
    text = describer(eth.payload) if describer else None
    return text or f"EtherType {eth.ethertype:#06x}, {len(frame)} bytes"


def _describe_arp(payload: bytes) -> str | None:
    a = parse_arp(payload)
    if a is None:
        return None
    if a.op == ARP_REQUEST:
        return f"ARP who-has {ip_text(a.target_ip)} tell {ip_text(a.sender_ip)}"
    return f"ARP {ip_text(a.sender_ip)} is-at {mac_text(a.sender_mac)}"


def _describe_ipv4(payload: bytes) -> str | None:
    ip = parse_ipv4(payload)
    if ip is None:
        return None
    route = f"{ip_text(ip.src)} > {ip_text(ip.dst)}"
    if ip.proto == PROTO_ICMP and len(ip.payload) >= 8:
        kind, _code, _sum, ident, seq = struct.unpack("!BBHHH", ip.payload[:8])
        name = {ICMP_ECHO_REQUEST: "echo request", ICMP_ECHO_REPLY: "echo reply"}.get(kind, f"type {kind}")
        return f"IPv4 {route} ICMP {name} id={ident} seq={seq} ttl={ip.ttl}"
    if ip.proto == PROTO_UDP and len(ip.payload) >= 8:
        sport, dport, length, _ = struct.unpack("!HHHH", ip.payload[:8])
        return f"IPv4 {route} UDP {sport} > {dport} length {length - 8}"
    return f"IPv4 {route} protocol {ip.proto}"


_DESCRIBERS = {ETHERTYPE_ARP: _describe_arp, ETHERTYPE_IPV4: _describe_ipv4}
