"""qcow2 cluster tables: L1/L2 entry bits, big-endian arrays and the L2 table cache.

A guest offset is split into (L1 index, L2 index, offset in cluster). The L1 entry
points at an L2 table (one cluster of 64-bit entries); the L2 entry points at the
host cluster holding the data. Bit 63 ("COPIED") says the refcount is exactly one,
so the cluster may be written in place; without it a write must copy first.
"""
from __future__ import annotations

import sys
from array import array
from collections import OrderedDict

from sandbox.errors import ImageError

OFFSET_MASK = 0x00FFFFFFFFFFFE00   # bits 9-55: host offset (cluster-aligned for these tables)
COPIED = 1 << 63                   # refcount is exactly 1: write in place
COMPRESSED = 1 << 62               # L2 only: compressed cluster (not supported here)
ZERO = 1                           # L2 only (version 3): the cluster reads as zeros
L1_RESERVED = 0x7F000000000001FF   # bits 0-8 and 56-62
L2_RESERVED = 0x3F000000000001FE   # bits 1-8 and 56-61

# What an L2 entry says about its guest cluster.
UNALLOCATED = "unallocated"        # read from the backing file, or zeros
ZEROES = "zero"                    # reads as zeros whatever the backing file holds
DATA = "data"                      # stored in the host cluster at the entry's offset

_LITTLE = sys.byteorder == "little"


def be64_array(buf: bytes) -> array:
    """Big-endian 64-bit table -> array of native integers."""
    table = array("Q", bytes(buf[:len(buf) - len(buf) % 8]))
    if _LITTLE:
        table.byteswap()
    return table


def be64_bytes(table) -> bytes:
    """Array (or list) of integers -> big-endian 64-bit table."""
    out = array("Q", table)
    if _LITTLE:
        out.byteswap()
    return out.tobytes()


def be64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def check_l1_entry(entry: int, index: int) -> int:
    """The L2 table offset in an L1 entry (0 if none); ImageError if the entry is malformed."""
    if entry & L1_RESERVED:
        raise ImageError(f"L1 entry {index} ({entry:#x}) has reserved or unaligned bits set")
    return entry & OFFSET_MASK


def decode_l2(entry: int, guest_offset: int) -> tuple[str, int]:
    """(kind, host offset) for one L2 entry; ImageError for what this code cannot read."""
    if entry & COMPRESSED:
        raise ImageError(f"compressed cluster at guest offset {guest_offset:#x} is not supported")
    if entry & L2_RESERVED:
        raise ImageError(f"L2 entry for guest offset {guest_offset:#x} ({entry:#x}) "
                         "has reserved or unaligned bits set")
    host = entry & OFFSET_MASK
    if entry & ZERO:
        return ZEROES, host
    if host:
        return DATA, host
    if entry & COPIED:
        raise ImageError(f"L2 entry for guest offset {guest_offset:#x} points at the header")
    return UNALLOCATED, 0


class L2Cache:
    """Recently used L2 tables, keyed by host offset, as arrays of native integers.

    Reads of allocated clusters then cost a dict lookup, an array index and one pread.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._tables: OrderedDict[int, array] = OrderedDict()

    def get(self, offset: int) -> array | None:
        table = self._tables.get(offset)
        if table is not None:
            self._tables.move_to_end(offset)
        return table

    def put(self, offset: int, table: array) -> None:
        self._tables[offset] = table
        self._tables.move_to_end(offset)
        while len(self._tables) > self.capacity:
            self._tables.popitem(last=False)

    def drop(self, offset: int) -> None:
        self._tables.pop(offset, None)

    def clear(self) -> None:
        self._tables.clear()
