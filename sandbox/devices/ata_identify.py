"""The 512-byte IDENTIFY DEVICE page an ATA disk returns (ATA/ATAPI-6 layout).

It is 256 little-endian words. Text fields store two characters per word with the
first character in the high byte, so read as plain bytes they look "byte-swapped".
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

LBA28_MAX = 0x0FFFFFFF
MAX_MULTIPLE = 16           # sectors per DRQ block that READ/WRITE MULTIPLE can use


@dataclass(frozen=True)
class Geometry:
    """A CHS view of the disk: cylinders x heads x sectors per track."""
    cylinders: int
    heads: int
    sectors: int

    @classmethod
    def for_capacity(cls, total: int, heads: int = 16, sectors: int = 63) -> "Geometry":
        cylinders = max(1, min(total // (heads * sectors), 65535 if heads != 16 else 16383))
        return cls(cylinders, heads, sectors)

    @property
    def capacity(self) -> int:
        return self.cylinders * self.heads * self.sectors


def ata_string(text: str, length: int) -> bytes:
    """``text`` padded with spaces to ``length`` bytes, each character pair swapped."""
    raw = text.encode("ascii", "replace")[:length].ljust(length, b" ")
    return bytes(raw[i ^ 1] for i in range(length))


def identify_page(total: int, default: Geometry, current: Geometry, multiple: int,
                  model: str, serial: str, firmware: str) -> bytes:
    words = [0] * 256

    def put(index: int, value: int) -> None:
        words[index] = value & 0xFFFF

    put(0, 0x0040)                                 # fixed, non-removable ATA device
    put(1, default.cylinders)
    put(3, default.heads)
    put(6, default.sectors)
    put(47, 0x8000 | MAX_MULTIPLE)                 # READ/WRITE MULTIPLE: up to 16 sectors
    put(48, 0x0001)                                # 32-bit data port transfers work
    put(49, (1 << 11) | (1 << 9))                  # IORDY, LBA (no DMA)
    put(50, 0x4000)
    put(51, 0x0200)                                # PIO timing mode 2
    put(53, 0x0003)                                # words 54-58 and 64-70 are valid
    put(54, current.cylinders)
    put(55, current.heads)
    put(56, current.sectors)
    put(57, current.capacity)
    put(58, current.capacity >> 16)
    put(59, 0x0100 | multiple if multiple else 0)
    lba28 = min(total, LBA28_MAX)
    put(60, lba28)
    put(61, lba28 >> 16)
    put(64, 0x0003)                                # PIO modes 3 and 4
    for index in (65, 66, 67, 68):
        put(index, 120)                            # cycle times, ns
    put(80, 0x007E)                                # ATA-1 .. ATA-6
    put(83, 0x4000 | (1 << 13) | (1 << 12) | (1 << 10))  # FLUSH CACHE (EXT), LBA48
    put(84, 0x4000)
    put(86, (1 << 13) | (1 << 12) | (1 << 10))
    put(87, 0x4000)
    for i in range(4):
        put(100 + i, total >> (16 * i))            # LBA48 capacity
    page = bytearray(struct.pack("<256H", *words))
    page[20:40] = ata_string(serial, 20)           # words 10-19
    page[46:54] = ata_string(firmware, 8)          # words 23-26
    page[54:94] = ata_string(model, 40)            # words 27-46
    page[510] = 0xA5                               # word 255: signature and checksum
    page[511] = -sum(page[:511]) & 0xFF
    return bytes(page)
