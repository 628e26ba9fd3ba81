"""qcow2 internal snapshots: the snapshot table and create / apply / delete.

A snapshot is a saved copy of the active L1 table. Creating one copies the L1 table
and adds one reference to every L2 table and data cluster it reaches, so from then on
a guest write finds refcount 2, copies the cluster and leaves the snapshot's view
alone. Applying one makes its L1 the active one; deleting one drops its references.
After either, the COPIED flags of the active tables are rebuilt from the refcounts.

Every step adds references before it links and unlinks before it drops them, and the
header switches to a new table with a single write after an fsync: a crash leaks
clusters at worst (``qemu-img check -r all`` may also have COPIED flags to fix).
"""
from __future__ import annotations

import struct
import time
from array import array
from collections import Counter
from dataclasses import dataclass

from sandbox.errors import ImageError
from sandbox.storage.qcow2_header import FIELD_L1, FIELD_SIZE, FIELD_SNAPSHOTS, MAX_L1_BYTES, \
    pack_field
from sandbox.storage.qcow2_tables import COMPRESSED, COPIED, OFFSET_MASK, be64_array, \
    be64_bytes, check_l1_entry, decode_l2

_ENTRY = struct.Struct(">QIHHIIQII")   # 40 fixed bytes of a snapshot table entry
MAX_EXTRA_DATA = 1024


@dataclass
class Snapshot:
    l1_offset: int
    l1_size: int
    id: str
    name: str
    date_sec: int = 0
    date_nsec: int = 0
    vm_clock_nsec: int = 0
    vm_state_size: int = 0
    extra: bytes = b""           # version 3: vm_state_size (64-bit), disk size, ...

    @property
    def disk_size(self) -> int | None:
        """The virtual disk size when the snapshot was taken (None if not recorded)."""
        return int.from_bytes(self.extra[8:16], "big") if len(self.extra) >= 16 else None

    def pack(self) -> bytes:
        id_bytes = self.id.encode("utf-8", "surrogateescape")
        name = self.name.encode("utf-8", "surrogateescape")
        entry = _ENTRY.pack(self.l1_offset, self.l1_size, len(id_bytes), len(name),
                            self.date_sec, self.date_nsec, self.vm_clock_nsec,
                            self.vm_state_size, len(self.extra)) + self.extra + id_bytes + name
        return entry + bytes(-len(entry) % 8)

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "date": self.date_sec,
                "vm_state_size": self.vm_state_size, "vm_clock_nsec": self.vm_clock_nsec,
                "disk_size": self.disk_size}


def read_snapshot_table(file, offset: int, count: int) -> tuple[list[Snapshot], int]:
    """Parse ``count`` entries at ``offset``; returns (snapshots, table length in bytes)."""
    snapshots = []
    pos = offset
    for _ in range(count):
        if pos + _ENTRY.size > file.size:
            raise ImageError("snapshot table is truncated")
        (l1_offset, l1_size, id_len, name_len, sec, nsec, clock, vm_state,
         extra_len) = _ENTRY.unpack(file.pread(pos, _ENTRY.size))
        if extra_len > MAX_EXTRA_DATA:
            raise ImageError(f"snapshot extra data of {extra_len} bytes is too large")
        var_len = extra_len + id_len + name_len
        if pos + _ENTRY.size + var_len > file.size:
            raise ImageError("snapshot table is truncated")
        var = file.pread(pos + _ENTRY.size, var_len)
        extra, ident = var[:extra_len], var[extra_len:extra_len + id_len]
        name = var[extra_len + id_len:]
        sn = Snapshot(l1_offset, l1_size, ident.decode("utf-8", "surrogateescape"),
                      name.decode("utf-8", "surrogateescape"), sec, nsec, clock, vm_state, extra)
        _check_snapshot_l1(sn, file)
        snapshots.append(sn)
        pos += -(-(_ENTRY.size + var_len) // 8) * 8
    return snapshots, pos - offset


def _check_snapshot_l1(sn: Snapshot, file) -> None:
    what = f"L1 table of snapshot '{sn.name}'"
    if sn.l1_size * 8 > MAX_L1_BYTES:
        raise ImageError(f"{what} is too large")
    if sn.l1_size == 0:
        return
    if sn.l1_offset % file.cluster_size or sn.l1_offset == 0:
        raise ImageError(f"{what} at {sn.l1_offset:#x} is not a valid cluster offset")
    if sn.l1_offset + 8 * sn.l1_size > file.round_up(file.size):
        raise ImageError(f"{what} runs past the end of the file")


class Qcow2Snapshots:
    """Snapshot operations of ``Qcow2Image`` (a mixin: it works on the image's tables)."""

    def find_snapshot(self, name: str) -> Snapshot:
        with self._guard():
            return self._find_snapshot(name)

    def _find_snapshot(self, name: str) -> Snapshot:
        for sn in self.snapshots:
            if sn.name == name:
                return sn
        for sn in self.snapshots:
            if sn.id == name:
                return sn
        raise ImageError(f"no snapshot named '{name}'")

    def create_snapshot(self, name: str) -> Snapshot:
        with self._guard():
            self._require_writable()
            if not name:
                raise ImageError("a snapshot needs a name")
            if any(sn.name == name for sn in self.snapshots):
                raise ImageError(f"snapshot '{name}' already exists")
            refs = self._references(self._l1)                     # validates before writing
            l1_copy = be64_bytes([e & ~COPIED for e in self._l1])
            l1_offset = self._allocate_run(l1_copy) if l1_copy else 0
            self._clear_copied_flags()
            self._refcounts.change(refs)
            now = time.time_ns()
            ids = [int(sn.id) for sn in self.snapshots if sn.id.isdigit()]
            sn = Snapshot(l1_offset, len(self._l1), str(max(ids, default=0) + 1), name,
                          now // 10**9, now % 10**9, 0, 0, struct.pack(">QQ", 0, self._size))
            self._write_snapshot_table(self.snapshots + [sn])
            self._metadata_changed()
            return sn

    def apply_snapshot(self, name: str) -> None:
        with self._guard():
            self._require_writable()
            sn = self._find_snapshot(name)
            sn_l1 = self._snapshot_l1(sn)
            size = sn.disk_size if sn.disk_size is not None else self._size
            if self.header.l1_entries_needed(size) > max(sn.l1_size, len(self._l1)):
                raise ImageError(f"snapshot '{sn.name}' records a disk size of {size} bytes "
                                 "that its L1 table does not cover")
            gain = self._references(sn_l1)
            lose = self._references(self._l1)
            self._refcounts.change(gain)
            entries = max(len(self._l1), sn.l1_size, self.header.l1_entries_needed(size))
            if entries > len(self._l1):
                self._move_l1(entries)
            new_l1 = array("Q", [e & ~COPIED for e in sn_l1])
            new_l1.extend([0] * (len(self._l1) - len(new_l1)))
            self._l1 = new_l1
            self._file.pwrite(self._l1_offset, be64_bytes(new_l1))
            self._cache.clear()
            self._refcounts.change({c: -n for c, n in lose.items()})
            if size != self._size:
                self._file.pwrite(*pack_field(FIELD_SIZE, size))
                self._size = size
            self._fix_copied_flags()
            self._metadata_changed()

    def delete_snapshot(self, name: str) -> None:
        with self._guard():
            self._require_writable()
            sn = self._find_snapshot(name)
            lose = self._references(self._snapshot_l1(sn))
            self._write_snapshot_table([s for s in self.snapshots if s is not sn])
            first = sn.l1_offset >> self._cluster_bits
            for c in range(first, first + self._clusters_for(8 * sn.l1_size)):
                lose[c] += 1
            self._refcounts.change({c: -n for c, n in lose.items()})
            self._fix_copied_flags()
            self._metadata_changed()

    # -- helpers -------------------------------------------------------------------------
    def _snapshot_l1(self, sn: Snapshot) -> array:
        return be64_array(self._file.pread(sn.l1_offset, 8 * sn.l1_size))

    def _references(self, l1) -> Counter:
        """How often each cluster is referenced through this L1 table: its L2 tables
        once per L1 entry, and every data cluster once per L2 entry."""
        refs: Counter = Counter()
        span = self._cluster_size * self._l2_entries
        for i, entry in enumerate(l1):
            l2_offset = check_l1_entry(entry, i)
            if not l2_offset:
                continue
            self._check_table_offset(l2_offset, "L2 table")
            refs[l2_offset >> self._cluster_bits] += 1
            for j, l2_entry in enumerate(self._l2(l2_offset)):
                if l2_entry:
                    kind, host = decode_l2(l2_entry, i * span + j * self._cluster_size)
                    if host:
                        self._check_host(host, i * span + j * self._cluster_size)
                        refs[host >> self._cluster_bits] += 1
        return refs

    def _clear_copied_flags(self) -> None:
        """Everything reachable from the active L1 is about to be shared."""
        for entry in self._l1:
            offset = entry & OFFSET_MASK
            table = self._l2(offset) if offset else ()
            if any(e & COPIED for e in table):
                cleared = array("Q", [e & ~COPIED for e in table])
                self._file.pwrite(offset, be64_bytes(cleared))
                self._cache.put(offset, cleared)
        if any(e & COPIED for e in self._l1):
            self._l1 = array("Q", [e & ~COPIED for e in self._l1])
            self._file.pwrite(self._l1_offset, be64_bytes(self._l1))

    def _fix_copied_flags(self) -> None:
        """Set COPIED exactly where the refcount is 1 in the active L1 and its L2 tables."""
        get = self._refcounts.get
        bits = self._cluster_bits
        l1 = array("Q", self._l1)
        for i, entry in enumerate(l1):
            offset = entry & OFFSET_MASK
            if not offset:
                continue
            table = self._l2(offset)
            fixed = array("Q", table)
            for j, e in enumerate(table):
                host = e & OFFSET_MASK
                if host and not e & COMPRESSED:
                    fixed[j] = e & ~COPIED | (COPIED if get(host >> bits) == 1 else 0)
            if fixed != table:
                self._file.pwrite(offset, be64_bytes(fixed))
                self._cache.put(offset, fixed)
            l1[i] = entry & ~COPIED | (COPIED if get(offset >> bits) == 1 else 0)
        if l1 != self._l1:
            self._l1 = l1
            self._file.pwrite(self._l1_offset, be64_bytes(l1))

    def _write_snapshot_table(self, snapshots: list[Snapshot]) -> None:
        raw = b"".join(sn.pack() for sn in snapshots)
        old_offset, old_length = self._snapshots_offset, self._snapshots_length
        offset = self._allocate_run(raw) if raw else 0
        self._file.sync()                                  # the table is on disk first
        self._file.pwrite(*pack_field(FIELD_SNAPSHOTS, len(snapshots), offset))
        self._file.sync()                                  # switched before the old one is freed
        self.snapshots, self._snapshots_offset, self._snapshots_length = snapshots, offset, len(raw)
        self._free_run(old_offset, old_length)

    def _move_l1(self, entries: int) -> None:
        """Give the active L1 table a bigger home (copy, fsync, switch header, free old)."""
        grown = array("Q", self._l1)
        grown.extend([0] * (entries - len(grown)))
        offset = self._allocate_run(be64_bytes(grown))
        self._file.sync()
        self._file.pwrite(*pack_field(FIELD_L1, entries, offset))
        self._file.sync()
        old_offset, old_length = self._l1_offset, 8 * len(self._l1)
        self._l1, self._l1_offset = grown, offset
        self._free_run(old_offset, old_length)

    def _free_run(self, offset: int, length: int) -> None:
        if not length:
            return
        first = offset >> self._cluster_bits
        run = range(first, first + self._clusters_for(length))
        self._refcounts.change({c: -1 for c in run if self._refcounts.get(c)})
