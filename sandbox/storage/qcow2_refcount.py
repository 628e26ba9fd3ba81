"""qcow2 reference counts: how many tables point at each host cluster.

Refcounts live in a two-level structure like the cluster map: the refcount table
(contiguous, its place in the header) points at refcount blocks, each one cluster of
``refcount_bits``-wide counters. 0 means free, 1 means used once (writable in place),
2 or more means shared with a snapshot (copy before writing).

Every change is written through at once. Callers keep the crash-safe order: write the
new cluster, raise its refcount, and only then link it into a table; unlink before
lowering a refcount. A process killed in between leaks a cluster at worst.
"""
from __future__ import annotations

import sys
from array import array

from sandbox.errors import ImageError
from sandbox.storage.qcow2_header import FIELD_REFTABLE, MAX_REFTABLE_BYTES, pack_field
from sandbox.storage.qcow2_io import ClusterFile, Layout
from sandbox.storage.qcow2_tables import be64, be64_array, be64_bytes

_TYPECODES = {1: "B", 2: "H", 4: next(c for c in "IL" if array(c).itemsize == 4), 8: "Q"}
_SCAN_PAST_EOF = 4096   # a search for free clusters gives up this far past the end of file


class RefBlock:
    """One refcount block in memory. Widths of 8-64 bits are an array of native ints;
    1, 2 and 4-bit widths are packed into bytes, least significant bits first."""

    def __init__(self, raw: bytes, bits: int) -> None:
        self.bits = bits
        self.width = bits // 8                     # bytes per entry, 0 for sub-byte widths
        if self.width:
            self.entries = array(_TYPECODES[self.width], raw)
            if sys.byteorder == "little" and self.width > 1:
                self.entries.byteswap()
        else:
            self.packed = bytearray(raw)
            self.mask = (1 << bits) - 1

    def get(self, i: int) -> int:
        if self.width:
            return self.entries[i]
        bit = i * self.bits
        return self.packed[bit >> 3] >> (bit & 7) & self.mask

    def set(self, i: int, value: int) -> tuple[int, bytes]:
        """Store a value; returns (byte offset in the block, bytes to write there)."""
        if self.width:
            self.entries[i] = value
            return i * self.width, value.to_bytes(self.width, "big")
        bit = i * self.bits
        byte = bit >> 3
        shift = bit & 7
        self.packed[byte] = self.packed[byte] & ~(self.mask << shift) | value << shift
        return byte, bytes(self.packed[byte:byte + 1])

    def find_zero(self, start: int, count: int) -> int:
        """Index of the first zero entry at or after ``start``, or -1."""
        if self.width:
            try:
                return self.entries.index(0, start)
            except ValueError:
                return -1
        return next((i for i in range(start, count) if self.get(i) == 0), -1)

    def to_bytes(self) -> bytes:
        if not self.width:
            return bytes(self.packed)
        out = array(self.entries.typecode, self.entries)
        if sys.byteorder == "little" and self.width > 1:
            out.byteswap()
        return out.tobytes()


class Refcounts:
    def __init__(self, file: ClusterFile, layout: Layout, order: int,
                 table_offset: int, table_clusters: int) -> None:
        self.file = file
        self.layout = layout
        self.bits = 1 << order
        self.max = (1 << self.bits) - 1
        self.per_block = file.cluster_size * 8 // self.bits
        self.table_offset = table_offset
        self.table_clusters = table_clusters
        self.table = be64_array(file.pread(table_offset, table_clusters * file.cluster_size))
        self._blocks: dict[int, RefBlock] = {}
        self.free_hint = 0

    def check_table(self) -> None:
        """Every refcount block must be cluster-aligned and inside the file."""
        end = self.file.round_up(self.file.size)
        for i, offset in enumerate(self.table):
            if not offset:
                continue
            if offset & (self.file.cluster_size - 1) or offset >> 56:
                raise ImageError(f"refcount table entry {i} ({offset:#x}) is not cluster-aligned")
            if offset + self.file.cluster_size > end:
                raise ImageError(f"refcount block {i} at {offset:#x} is past the end of the file")

    # -- reading -------------------------------------------------------------------------
    def _block(self, index: int) -> RefBlock | None:
        if index >= len(self.table) or not self.table[index]:
            return None
        block = self._blocks.get(index)
        if block is None:
            raw = self.file.pread(self.table[index], self.file.cluster_size)
            block = self._blocks[index] = RefBlock(raw, self.bits)
        return block

    def get(self, cluster: int) -> int:
        index, i = divmod(cluster, self.per_block)
        block = self._block(index)
        return block.get(i) if block else 0

    # -- changing ------------------------------------------------------------------------
    def change(self, deltas: dict[int, int]) -> None:
        """Add ``deltas[cluster]`` to each cluster's refcount, written through.

        Every new value is checked before anything is written, so a corrupt image
        raises ImageError with the file untouched.
        """
        updates: dict[int, list[tuple[int, int]]] = {}
        for cluster, delta in deltas.items():
            if not delta:
                continue
            value = self.get(cluster) + delta
            where = f"cluster at {cluster * self.file.cluster_size:#x}"
            if value < 0:
                raise ImageError(f"refcount of the {where} would drop below zero: image is corrupt")
            if value > self.max:
                raise ImageError(f"refcount of the {where} would overflow {self.bits} bits")
            index, i = divmod(cluster, self.per_block)
            if self._block(index) is None:
                raise ImageError(f"the {where} is in use but has no refcount block: "
                                 "image is corrupt")
            updates.setdefault(index, []).append((i, value))
        for index, entries in updates.items():
            self._write_entries(index, entries)
            for i, value in entries:
                if value == 0:
                    self.free_hint = min(self.free_hint, index * self.per_block + i)

    def _write_entries(self, index: int, entries: list[tuple[int, int]]) -> None:
        block = self._blocks[index]
        base = self.table[index]
        writes = [block.set(i, value) for i, value in entries]
        if len(writes) > 8:
            self.file.pwrite(base, block.to_bytes())
        else:
            for offset, data in writes:
                self.file.pwrite(base + offset, data)

    # -- allocation ----------------------------------------------------------------------
    def _next_zero(self, cluster: int) -> int:
        """The first cluster at or after ``cluster`` whose refcount is 0."""
        while True:
            index, i = divmod(cluster, self.per_block)
            block = self._block(index)
            if block is None:
                return cluster
            found = block.find_zero(i, self.per_block)
            if found >= 0:
                return index * self.per_block + found
            cluster = (index + 1) * self.per_block

    def find_free(self, count: int = 1) -> int:
        """First cluster of a run of ``count`` free clusters that are not metadata.

        Refcount blocks that would describe the run are created first, so the
        caller's ``change({c: +1})`` never has to allocate. The clusters stay free
        until the caller raises their refcounts.
        """
        while True:
            start = self._find_run(count)
            missing = [b for b in range(start // self.per_block,
                                        (start + count - 1) // self.per_block + 1)
                       if self._block(b) is None]
            if not missing:
                self.free_hint = start if count == 1 else self.free_hint
                return start
            self._create_block(missing[0], max(missing[0] * self.per_block, start))

    def _find_run(self, count: int) -> int:
        limit = self.file.clusters + count + _SCAN_PAST_EOF
        cluster = max(self.free_hint, 1)
        while True:
            cluster = self._next_zero(cluster)
            run = 0
            while run < count and cluster + run < limit and self.get(cluster + run) == 0 \
                    and self.layout.kind_at(cluster + run) is None:
                run += 1
            if run == count:
                return cluster
            if cluster + run >= limit:
                raise ImageError("no free cluster near the end of the file: refcounts are corrupt")
            cluster += run + 1

    def _create_block(self, index: int, home: int) -> None:
        """Make refcount block ``index`` in cluster ``home`` (a free cluster it describes),
        counting itself: write the block, then point the refcount table at it."""
        if index >= len(self.table):
            self._grow_table(index + 1)
            if self._block(index) is not None:
                return
        block = RefBlock(bytes(self.file.cluster_size), self.bits)
        block.set(home - index * self.per_block, 1)
        offset = home * self.file.cluster_size
        self.file.grant(home)
        self.file.pwrite(offset, block.to_bytes())
        self.table[index] = offset
        self.file.pwrite(self.table_offset + 8 * index, be64(offset))
        self._blocks[index] = block
        self.layout.claim(offset, self.file.cluster_size, "refcount block")

    def _grow_table(self, min_entries: int) -> None:
        """Move the refcount table to a bigger home past everything it describes.

        New refcount blocks for the new home come first, then the table; the header
        switches to it with one write, and only then are the old table's clusters freed.
        """
        cs = self.file.cluster_size
        old_entries = len(self.table)
        want = max(min_entries, 2 * old_entries)
        start = max(self.file.clusters, old_entries * self.per_block)
        new_blocks: list[int] = []
        while True:
            table_clusters = -(-want * 8 // cs)
            region = len(new_blocks) + table_clusters
            needed = [b for b in range(start // self.per_block,
                                       (start + region - 1) // self.per_block + 1)
                      if self._block(b) is None]
            if needed and needed[-1] + 1 > want:
                want = needed[-1] + 1
                continue
            if len(needed) == len(new_blocks):
                break
            new_blocks = needed
        if table_clusters * cs > MAX_REFTABLE_BYTES:
            raise ImageError("refcount table would exceed 8 MiB: image is too large")
        table = array("Q", self.table)
        table.extend([0] * (table_clusters * cs // 8 - len(table)))
        blocks = {b: RefBlock(bytes(cs), self.bits) for b in new_blocks}
        for j, b in enumerate(new_blocks):
            table[b] = (start + j) * cs
        self.file.grant(start, region)
        old_block_entries: dict[int, list[tuple[int, int]]] = {}
        for cluster in range(start, start + region):
            b, i = divmod(cluster, self.per_block)
            if b in blocks:
                blocks[b].set(i, 1)
            else:
                old_block_entries.setdefault(b, []).append((i, 1))
        for b, entries in old_block_entries.items():
            self._write_entries(b, entries)
        for j, b in enumerate(new_blocks):
            self.file.pwrite((start + j) * cs, blocks[b].to_bytes())
        table_offset = (start + len(new_blocks)) * cs
        self.file.pwrite(table_offset, be64_bytes(table))
        self.file.sync()                         # new blocks and table are on disk, then
        self.file.pwrite(*pack_field(FIELD_REFTABLE, table_offset, table_clusters))
        self.file.sync()                         # the switch is, before the old table is freed
        old_offset, old_clusters = self.table_offset, self.table_clusters
        self.table, self.table_offset, self.table_clusters = table, table_offset, table_clusters
        self._blocks.update(blocks)
        self.layout.release(old_offset, old_clusters * cs)
        for j, b in enumerate(new_blocks):
            self.layout.claim((start + j) * cs, cs, "refcount block")
        self.layout.claim(table_offset, table_clusters * cs, "refcount table")
        first_old = old_offset // cs
        self.change({c: -1 for c in range(first_old, first_old + old_clusters) if self.get(c)})
