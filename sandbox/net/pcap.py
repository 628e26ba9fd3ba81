"""Packet captures in the classic libpcap format, which tcpdump, tshark and Wireshark open.

File = one 24-byte global header, then per frame a 16-byte record header and the
frame's bytes. We use the nanosecond variant (magic 0xa1b23c4d) because timestamps
are guest time in nanoseconds: the same run gives the same file, byte for byte.
Link type 1 means "Ethernet": each record is a frame from the destination MAC on,
without the FCS. Reference: the pcap file format (IETF draft-ietf-opsawg-pcap).
"""
from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Iterator

from sandbox.errors import SandboxError

MAGIC_NS = 0xA1B23C4D
MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
GLOBAL_HEADER = struct.Struct("<IHHiIII")
RECORD_HEADER = struct.Struct("<IIII")


class PcapError(SandboxError):
    """A capture file that cannot be written or read."""


class PcapWriter:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._file: BinaryIO = open(self.path, "wb")
        except OSError as e:
            raise PcapError(f"{path}: cannot write the capture ({e.strerror})") from None
        self._file.write(GLOBAL_HEADER.pack(MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET))
        self.frames = 0

    def write(self, time_ns: int, frame: bytes) -> None:
        kept = frame[:SNAPLEN]
        self._file.write(RECORD_HEADER.pack(time_ns // 1_000_000_000, time_ns % 1_000_000_000,
                                            len(kept), len(frame)) + kept)
        self.frames += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_pcap(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """(time in ns, frame) for each record of a capture (either timestamp resolution)."""
    data = Path(path).read_bytes()
    if len(data) < GLOBAL_HEADER.size:
        raise PcapError(f"{path}: too short for a pcap file")
    magic, _major, _minor, _zone, _sigfigs, _snaplen, link = GLOBAL_HEADER.unpack_from(data)
    if magic not in (MAGIC_NS, MAGIC_US):
        raise PcapError(f"{path}: not a little-endian pcap file (magic {magic:#x})")
    if link != LINKTYPE_ETHERNET:
        raise PcapError(f"{path}: link type {link}, not Ethernet")
    scale = 1 if magic == MAGIC_NS else 1000
    at = GLOBAL_HEADER.size
    while at + RECORD_HEADER.size <= len(data):
        sec, frac, incl, _orig = RECORD_HEADER.unpack_from(data, at)
        at += RECORD_HEADER.size
        if at + incl > len(data):
            raise PcapError(f"{path}: the last record is cut short")
        yield sec * 1_000_000_000 + frac * scale, data[at:at + incl]
        at += incl
