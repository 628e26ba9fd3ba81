"""A qcow2 disk image (QEMU's copy-on-write format), versions 2 and 3.

The guest sees a flat disk; the file holds only the clusters that were written, found
through two tables (L1 -> L2 -> host cluster). Unwritten clusters read from the
backing file (an overlay on a base image) or as zeros. Writes allocate clusters in
this crash-safe order: data, refcount, L2 entry, L1 entry, each written through, so a
killed process leaks clusters at worst. ``flush()`` is an fsync.

Not supported (refused with a one-line ImageError): compressed clusters, encryption,
external data files, extended L2 entries, writing to dirty (lazy refcount) or corrupt
images.
"""
from __future__ import annotations

import os
import stat
import threading
from array import array
from contextlib import contextmanager

from sandbox.errors import ImageError
from sandbox.storage.qcow2_header import FIELD_AUTOCLEAR, MAGIC, pack_field, parse_header
from sandbox.storage.qcow2_io import ClusterFile, Layout
from sandbox.storage.qcow2_refcount import Refcounts
from sandbox.storage.qcow2_snapshot import Qcow2Snapshots, read_snapshot_table
from sandbox.storage.qcow2_tables import COPIED, DATA, OFFSET_MASK, UNALLOCATED, L2Cache, \
    be64, be64_array, be64_bytes, check_l1_entry, decode_l2
from sandbox.storage.raw import RawImage

MAX_CHAIN = 16   # backing files deeper than this are refused (QEMU allows about as many)


def _open_fd(path: str, readonly: bool) -> tuple[int, bool]:
    try:
        return os.open(path, os.O_RDONLY if readonly else os.O_RDWR), readonly
    except FileNotFoundError:
        raise ImageError(f"{path}: disk image not found") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not a disk image") from None
    except PermissionError:
        if readonly:
            raise ImageError(f"{path}: disk image is not readable") from None
        return _open_fd(path, True)[0], True     # a read-only file opens as a read-only disk
    except OSError as e:
        raise ImageError(f"{path}: cannot open disk image ({e.strerror})") from None


class Qcow2Image(Qcow2Snapshots):
    """A qcow2 file as a ``BlockImage`` (size/read/write/flush/close), plus snapshots
    (``snapshots``, ``create_snapshot``, ``apply_snapshot``, ``delete_snapshot``).

    ``header`` is the header as read at open; the live tables are ``_l1``,
    ``_refcounts`` and ``snapshots``, and the live virtual size is ``size()``.
    ``backing`` is the opened (read-only) backing image, or None.
    """

    format = "qcow2"

    def __init__(self, path, readonly: bool = False, _chain: tuple = (),
                 open_backing: bool = True) -> None:
        """``open_backing=False`` inspects an image whose backing file is missing
        (reads of unallocated clusters then return zeros)."""
        self.path = str(path)
        self._lock = threading.RLock()
        self.backing = None
        self._fd = -1
        self._fd, self.readonly = _open_fd(self.path, readonly)
        try:
            self._open(_chain, open_backing)
        except ImageError as e:
            self.close()
            raise ImageError(f"{self.path}: {e}") from None
        except BaseException:
            self.close()
            raise

    # -- opening -------------------------------------------------------------------------
    def _open(self, chain: tuple, open_backing: bool) -> None:
        header_file = ClusterFile(self._fd, self.path, 9)   # cluster size unknown yet
        self.header = h = parse_header(header_file.pread, header_file.size, self.readonly)
        self._cluster_bits = h.cluster_bits
        self._cluster_size = h.cluster_size
        self._l2_entries = h.l2_entries
        self._l2_bits = h.cluster_bits - 3
        self._size = h.size
        self._file = ClusterFile(self._fd, self.path, h.cluster_bits)
        self._cache = L2Cache()
        self._l1_offset = h.l1_table_offset
        self._l1 = be64_array(self._file.pread(h.l1_table_offset, 8 * h.l1_size))
        self._refcounts = Refcounts(self._file, Layout(h.cluster_bits), h.refcount_order,
                                    h.refcount_table_offset, h.refcount_table_clusters)
        self.snapshots, self._snapshots_length = read_snapshot_table(
            self._file, h.snapshots_offset, h.nb_snapshots)
        self._snapshots_offset = h.snapshots_offset if h.nb_snapshots else 0
        self._build_layout()
        if not self.readonly and h.autoclear_features:
            # Autoclear features (e.g. dirty bitmaps) are not maintained here: clear
            # their bits before the first write so QEMU knows their data is stale.
            self._file.pwrite(*pack_field(FIELD_AUTOCLEAR, 0))
        self.backing = self._open_backing(chain) if open_backing else None

    def _build_layout(self) -> None:
        """Claim every metadata cluster; overlapping or out-of-file tables are refused."""
        cs = self._cluster_size
        layout = Layout(self._cluster_bits)
        rc = self._refcounts
        layout.claim(0, cs, "header")
        layout.claim(rc.table_offset, rc.table_clusters * cs, "refcount table")
        if len(self._l1):
            layout.claim(self._l1_offset, 8 * len(self._l1), "L1 table")
        if self._snapshots_length:
            layout.claim(self._snapshots_offset, self._snapshots_length, "snapshot table")
        rc.check_table()
        for offset in rc.table:
            if offset:
                layout.claim(offset, cs, "refcount block")
        l1_tables = [self._l1]
        for sn in self.snapshots:
            if sn.l1_size:
                layout.claim(sn.l1_offset, 8 * sn.l1_size, f"L1 table of snapshot '{sn.name}'")
                l1_tables.append(self._snapshot_l1(sn))
        for l1 in l1_tables:
            for i, entry in enumerate(l1):
                offset = check_l1_entry(entry, i)
                if offset:
                    self._check_table_offset(offset, "L2 table")
                    layout.claim(offset, cs, "L2 table", shareable=True)
        self._layout = rc.layout = layout

    def _open_backing(self, chain: tuple):
        name = self.header.backing_file
        if not name:
            return None
        here = os.stat(self._fd)
        chain = chain + ((here.st_dev, here.st_ino),)
        if len(chain) > MAX_CHAIN:
            raise ImageError(f"backing chain is deeper than {MAX_CHAIN} images")
        path = name if os.path.isabs(name) else \
            os.path.join(os.path.dirname(os.path.abspath(self.path)), name)
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            raise ImageError(f"backing file {name} not found") from None
        if (st.st_dev, st.st_ino) in chain:
            raise ImageError(f"backing file chain loops back to {name}")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise ImageError(f"backing file {name} is not a regular file")
        fmt = self.header.backing_format or probe_format(path)
        opener = BACKING_FORMATS.get(fmt)
        if opener is None:
            raise ImageError(f"backing format '{fmt}' is not supported (raw or qcow2)")
        return opener(path, chain)

    @contextmanager
    def _guard(self):
        """Hold the image lock; an ImageError leaving it names this file (once)."""
        with self._lock:
            try:
                yield
            except ImageError as e:
                if str(e).startswith(f"{self.path}: "):
                    raise
                raise ImageError(f"{self.path}: {e}") from None

    # -- the BlockImage interface --------------------------------------------------------
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ImageError(f"{self.path}: negative read offset or length")
        with self._guard():
            stop = min(offset + length, self._size)
            parts = []
            pos = offset
            run_kind, run_start, run_host, run_len = None, 0, 0, 0
            while pos < stop:
                within = pos & (self._cluster_size - 1)
                n = min(self._cluster_size - within, stop - pos)
                kind, host = self._lookup(pos)
                host += within
                if kind is run_kind and (kind is not DATA or host == run_host + run_len):
                    run_len += n                          # extend the run: one pread later
                else:
                    self._read_run(parts, run_kind, run_start, run_host, run_len)
                    run_kind, run_start, run_host, run_len = kind, pos, host, n
                pos += n
            self._read_run(parts, run_kind, run_start, run_host, run_len)
            data = b"".join(parts)
            return data + bytes(length - len(data)) if len(data) < length else data

    def _read_run(self, parts: list, kind, start: int, host: int, length: int) -> None:
        if not length:
            return
        if kind is DATA:
            parts.append(self._file.pread(host, length))
        elif kind is UNALLOCATED and self.backing is not None:
            parts.append(self.backing.read(start, length))
        else:
            parts.append(bytes(length))

    def write(self, offset: int, data) -> None:
        if self.readonly:
            raise PermissionError(f"{self.path} is read-only")
        data = bytes(data)
        if offset < 0 or offset + len(data) > self._size:
            raise ImageError(f"{self.path}: write of {len(data)} bytes at {offset} is outside "
                             f"the {self._size}-byte disk")
        with self._guard():
            pos = 0
            while pos < len(data):
                guest = offset + pos
                within = guest & (self._cluster_size - 1)
                n = min(self._cluster_size - within, len(data) - pos)
                self._write_cluster(guest - within, within, data[pos:pos + n])
                pos += n

    def flush(self) -> None:
        with self._lock:
            if not self.readonly and self._fd >= 0:
                self._file.sync()

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            if self.backing is not None:
                self.backing.close()
                self.backing = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- mapping -------------------------------------------------------------------------
    def _lookup(self, guest: int) -> tuple[str, int]:
        """(kind, host offset of the cluster) for a guest offset."""
        cluster = guest >> self._cluster_bits
        l1_index = cluster >> self._l2_bits
        if l1_index >= len(self._l1):
            return UNALLOCATED, 0
        l2_offset = self._l1[l1_index] & OFFSET_MASK
        if not l2_offset:
            return UNALLOCATED, 0
        entry = self._l2(l2_offset)[cluster & (self._l2_entries - 1)]
        kind, host = decode_l2(entry, guest)
        if kind is DATA:
            self._check_host(host, guest)
        return kind, host

    def _l2(self, offset: int) -> array:
        table = self._cache.get(offset)
        if table is None:
            table = be64_array(self._file.pread(offset, self._cluster_size))
            self._cache.put(offset, table)
        return table

    def _check_host(self, host: int, guest: int) -> None:
        if host >= self._file.size:
            raise ImageError(f"guest offset {guest:#x} maps to {host:#x}, "
                             "past the end of the file")

    def _check_table_offset(self, offset: int, what: str) -> None:
        if offset + self._cluster_size > self._file.round_up(self._file.size):
            raise ImageError(f"{what} at {offset:#x} is past the end of the file")

    def _clusters_for(self, length: int) -> int:
        return -(-length // self._cluster_size)

    # -- writing -------------------------------------------------------------------------
    def _require_writable(self) -> None:
        if self.readonly:
            raise ImageError("image is open read-only")

    def _write_cluster(self, guest: int, within: int, piece: bytes) -> None:
        cluster = guest >> self._cluster_bits
        l2_offset, table = self._writable_l2(cluster >> self._l2_bits)
        index = cluster & (self._l2_entries - 1)
        entry = table[index]
        kind, host = decode_l2(entry, guest)
        if kind is DATA:
            self._check_host(host, guest)
            owner = self._layout.kind_at(host >> self._cluster_bits)
            if owner:
                raise ImageError(f"guest offset {guest:#x} maps onto the {owner}: "
                                 "image is corrupt")
            if entry & COPIED:                     # ours alone: overwrite in place
                self._file.pwrite(host + within, piece)
                return
        if len(piece) == self._cluster_size:
            content = piece
        else:                                      # copy on write: start from what reads now
            old = self._file.pread(host, self._cluster_size) if kind is DATA else \
                self.backing.read(guest, self._cluster_size) \
                if kind is UNALLOCATED and self.backing is not None else bytes(self._cluster_size)
            content = old[:within] + piece + old[within + len(piece):]
        new = self._allocate(content)              # 1. data, 2. refcount
        table[index] = new | COPIED                # 3. L2 entry
        self._file.pwrite(l2_offset + 8 * index, be64(new | COPIED))
        if host:                                   # 4. the old cluster loses a reference
            self._refcounts.change({host >> self._cluster_bits: -1})

    def _writable_l2(self, l1_index: int) -> tuple[int, array]:
        """The L2 table for an L1 entry, made private first (allocated or copied)."""
        entry = self._l1[l1_index]
        old = entry & OFFSET_MASK
        if old and entry & COPIED:
            return old, self._l2(old)
        table = array("Q", self._l2(old)) if old else array("Q", bytes(self._cluster_size))
        new = self._allocate(be64_bytes(table))
        self._layout.claim(new, self._cluster_size, "L2 table", shareable=True)
        self._cache.put(new, table)
        self._l1[l1_index] = new | COPIED
        self._file.pwrite(self._l1_offset + 8 * l1_index, be64(new | COPIED))
        if old:
            old_cluster = old >> self._cluster_bits
            self._refcounts.change({old_cluster: -1})
            if not self._refcounts.get(old_cluster):
                self._layout.release(old, self._cluster_size)
                self._cache.drop(old)
        return new, table

    def _allocate(self, content: bytes) -> int:
        """Write one new cluster, then count it: a crash in between only leaks it."""
        cluster = self._refcounts.find_free(1)
        self._file.grant(cluster)
        self._file.pwrite(cluster << self._cluster_bits, content)
        self._refcounts.change({cluster: 1})
        return cluster << self._cluster_bits

    def _allocate_run(self, content: bytes) -> int:
        """Contiguous clusters for a table (L1 or snapshot table), written then counted."""
        count = self._clusters_for(len(content))
        first = self._refcounts.find_free(count)
        self._file.grant(first, count)
        self._file.pwrite(first << self._cluster_bits,
                          content + bytes(count * self._cluster_size - len(content)))
        self._refcounts.change({c: 1 for c in range(first, first + count)})
        return first << self._cluster_bits

    def _metadata_changed(self) -> None:
        self._build_layout()
        self._file.sync()

    # -- inspection (for `sandbox disk info`) --------------------------------------------
    @property
    def cluster_size(self) -> int:
        return self._cluster_size

    def allocated_clusters(self) -> int:
        """Guest clusters stored in this file (not in the backing file, not zero-flagged)."""
        with self._guard():
            count = 0
            for entry in self._l1:
                offset = entry & OFFSET_MASK
                if offset:
                    count += sum(1 for e in self._l2(offset)
                                 if e & OFFSET_MASK and not e & 1 and not e >> 62 & 1)
            return count

    def refcount(self, host_offset: int) -> int:
        return self._refcounts.get(host_offset >> self._cluster_bits)


def probe_format(path: str) -> str:
    """'qcow2' if the file starts with the qcow2 magic, else 'raw' (as open_image decides)."""
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == MAGIC else "raw"
    except OSError as e:
        raise ImageError(f"cannot read {path} ({e.strerror})") from None


# Formats a backing file may have: each opens read-only, so a base image is never written.
BACKING_FORMATS = {
    "raw": lambda path, chain: RawImage(path, readonly=True),
    "qcow2": lambda path, chain: Qcow2Image(path, readonly=True, _chain=chain),
}
