"""The qcow2 file header: fixed fields, feature bits and header extensions.

All numbers in qcow2 are big-endian. A version 2 header is 72 bytes; version 3 adds
three feature bitmaps, the refcount width and the header length (at least 104 bytes).
Header extensions (type, length, data padded to 8 bytes) follow the header; the backing
file name sits after them, still inside the first cluster.

The header is parsed once and afterwards only single fields are rewritten in place
(``FIELD_*`` below): extensions this code does not understand survive every change.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from sandbox.errors import ImageError

MAGIC = b"QFI\xfb"
V2_HEADER_LENGTH = 72
V3_HEADER_LENGTH = 104
MIN_CLUSTER_BITS, MAX_CLUSTER_BITS = 9, 21   # 512 B .. 2 MiB, the range QEMU opens
MAX_L1_BYTES = 32 << 20                      # QEMU's limits, so hostile sizes stay bounded
MAX_REFTABLE_BYTES = 8 << 20
MAX_BACKING_NAME = 1023
MAX_SNAPSHOTS = 65536
MAX_VIRTUAL_SIZE = 1 << 56                   # L2 entries address at most 2^56 bytes

_FIXED = struct.Struct(">4sIQIIQIIQQIIQ")    # the 72-byte version 2 header
_V3 = struct.Struct(">QQQII")                # incompatible, compatible, autoclear, order, length

# Fields rewritten in place: (byte offset, struct format). Neighbours share one write.
FIELD_SIZE = (24, ">Q")                      # virtual disk size
FIELD_L1 = (36, ">IQ")                       # l1_size, l1_table_offset
FIELD_REFTABLE = (48, ">QI")                 # refcount_table_offset, refcount_table_clusters
FIELD_SNAPSHOTS = (60, ">IQ")                # nb_snapshots, snapshots_offset
FIELD_AUTOCLEAR = (88, ">Q")                 # autoclear feature bits (version 3)

# Header extension types.
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_NAMES = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

# Incompatible feature bits: (name, what this implementation does when the bit is set).
#   "ok": harmless here; "read-only": may be read but never written; "refuse": cannot open.
INCOMPATIBLE_FEATURES = {
    0: ("dirty bit", "read-only"),            # lazy refcounts left refcounts stale
    1: ("corrupt bit", "read-only"),          # QEMU found corruption and stopped writing
    2: ("external data file", "refuse"),      # guest data lives in another file
    3: ("compression type", "ok"),            # only matters for compressed clusters
    4: ("extended L2 entries", "refuse"),     # subclusters: 128-bit L2 entries
}
COMPATIBLE_FEATURES = {0: "lazy refcounts"}
AUTOCLEAR_FEATURES = {0: "bitmaps", 1: "raw external data"}
_FEATURE_TYPES = {0: INCOMPATIBLE_FEATURES, 1: COMPATIBLE_FEATURES, 2: AUTOCLEAR_FEATURES}


@dataclass
class Qcow2Header:
    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    backing_file: str | None = None
    backing_format: str | None = None
    feature_names: dict = field(default_factory=dict)   # (type, bit) -> name from the image
    extensions: list = field(default_factory=list)      # [(type, length)] in file order

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def l2_entries(self) -> int:
        return self.cluster_size // 8

    def l1_entries_needed(self, size: int | None = None) -> int:
        """L1 entries that cover ``size`` bytes (each L2 table maps l2_entries clusters)."""
        span = self.cluster_size * self.l2_entries
        return -(-(self.size if size is None else size) // span)

    def feature_name(self, kind: int, bit: int) -> str:
        name = self.feature_names.get((kind, bit)) or _FEATURE_TYPES[kind].get(bit)
        if isinstance(name, tuple):
            name = name[0]
        return name or f"bit {bit}"


def pack_field(spec: tuple[int, str], *values: int) -> tuple[int, bytes]:
    """(offset, bytes) that rewrite one header field group in place."""
    offset, fmt = spec
    return offset, struct.pack(fmt, *values)


def parse_header(read, file_size: int, readonly: bool) -> Qcow2Header:
    """Parse and validate the header; ``read(offset, length)`` reads the image file."""
    if file_size < V2_HEADER_LENGTH:
        raise ImageError("file is too short for a qcow2 header")
    fixed = _FIXED.unpack(read(0, _FIXED.size))
    if fixed[0] != MAGIC:
        raise ImageError("not a qcow2 image (bad magic)")
    h = Qcow2Header(*fixed[1:])
    if h.version not in (2, 3):
        raise ImageError(f"qcow2 version {h.version} is not supported (only 2 and 3)")
    if not MIN_CLUSTER_BITS <= h.cluster_bits <= MAX_CLUSTER_BITS:
        raise ImageError(f"cluster_bits {h.cluster_bits} is outside 9..21")
    if h.version == 3:
        (h.incompatible_features, h.compatible_features, h.autoclear_features,
         h.refcount_order, h.header_length) = _V3.unpack(read(_FIXED.size, _V3.size))
        if h.header_length < V3_HEADER_LENGTH or h.header_length % 8:
            raise ImageError(f"header_length {h.header_length} is invalid")
        if h.header_length > h.cluster_size:
            raise ImageError("header is longer than one cluster")
    if h.refcount_order > 6:
        raise ImageError(f"refcount_order {h.refcount_order} is invalid (at most 6)")
    first = read(0, min(h.cluster_size, file_size))
    _parse_extensions(h, first)
    _check_features(h, readonly)
    _check_geometry(h, file_size)
    _parse_backing_name(h, first)
    return h


def _parse_extensions(h: Qcow2Header, first: bytes) -> None:
    pos = h.header_length
    end = len(first)
    if h.backing_file_offset and h.backing_file_offset < end:
        end = h.backing_file_offset
    while pos + 8 <= end:
        ext_type, length = struct.unpack_from(">II", first, pos)
        if ext_type == EXT_END:
            return
        data_start = pos + 8
        if data_start + length > end:
            raise ImageError(f"header extension {ext_type:#x} runs past the first cluster")
        data = first[data_start:data_start + length]
        h.extensions.append((ext_type, length))
        if ext_type == EXT_BACKING_FORMAT:
            h.backing_format = data.decode("ascii", "replace")
        elif ext_type == EXT_FEATURE_NAMES:
            for i in range(0, length - length % 48, 48):
                kind, bit = data[i], data[i + 1]
                name = data[i + 2:i + 48].split(b"\0", 1)[0].decode("utf-8", "replace")
                if kind in _FEATURE_TYPES:
                    h.feature_names[(kind, bit)] = name
        pos = data_start + (length + 7) // 8 * 8


def _check_features(h: Qcow2Header, readonly: bool) -> None:
    if h.crypt_method:
        raise ImageError("encrypted qcow2 images are not supported")
    for bit in range(64):
        if not h.incompatible_features >> bit & 1:
            continue
        policy = INCOMPATIBLE_FEATURES.get(bit, (None, "refuse"))[1]
        name = h.feature_name(0, bit)
        if policy == "refuse":
            raise ImageError(f"incompatible feature '{name}' is not supported")
        if policy == "read-only" and not readonly:
            raise ImageError(f"image has the '{name}' set: open it read-only, "
                             "or repair it with `qemu-img check -r all`")


def _check_geometry(h: Qcow2Header, file_size: int) -> None:
    cs = h.cluster_size
    if h.size > MAX_VIRTUAL_SIZE:
        raise ImageError(f"virtual size {h.size} is too large")
    if h.l1_size * 8 > MAX_L1_BYTES:
        raise ImageError(f"L1 table of {h.l1_size} entries is too large")
    if h.l1_size < h.l1_entries_needed():
        raise ImageError("L1 table is too small for the virtual size")
    if h.l1_size:
        _check_region("L1 table", h.l1_table_offset, h.l1_size * 8, cs, file_size)
    if h.refcount_table_clusters == 0:
        raise ImageError("image has no refcount table")
    if h.refcount_table_clusters * cs > MAX_REFTABLE_BYTES:
        raise ImageError("refcount table is too large")
    _check_region("refcount table", h.refcount_table_offset, h.refcount_table_clusters * cs,
                  cs, file_size)
    if h.nb_snapshots > MAX_SNAPSHOTS:
        raise ImageError(f"{h.nb_snapshots} snapshots is more than qcow2 allows")
    if h.nb_snapshots:
        _check_region("snapshot table", h.snapshots_offset, 40, cs, file_size)


def _check_region(what: str, offset: int, length: int, cluster_size: int, file_size: int) -> None:
    """A table must start on a cluster boundary, after the header, inside the file."""
    if offset % cluster_size:
        raise ImageError(f"{what} offset {offset:#x} is not cluster-aligned")
    if offset == 0:
        raise ImageError(f"{what} overlaps the header")
    if offset + length > -(-file_size // cluster_size) * cluster_size:
        raise ImageError(f"{what} at {offset:#x} runs past the end of the file")


def _parse_backing_name(h: Qcow2Header, first: bytes) -> None:
    if not h.backing_file_offset:
        return
    if h.backing_file_size == 0:
        return
    if h.backing_file_size > MAX_BACKING_NAME:
        raise ImageError("backing file name is longer than 1023 bytes")
    end = h.backing_file_offset + h.backing_file_size
    if end > len(first):
        raise ImageError("backing file name lies outside the first cluster")
    name = first[h.backing_file_offset:end]
    if b"\0" in name:
        raise ImageError("backing file name contains a zero byte")
    h.backing_file = name.decode("utf-8", "surrogateescape")


def pack_header(*, version: int, cluster_bits: int, size: int, l1_size: int, l1_offset: int,
                reftable_offset: int, reftable_clusters: int, refcount_order: int = 4,
                backing_file: str | None = None, backing_format: str | None = None) -> bytes:
    """The bytes of a new image's first cluster up to the backing file name."""
    v3 = version == 3
    header_length = V3_HEADER_LENGTH + 8 if v3 else V2_HEADER_LENGTH  # + compression_type, pad
    name = backing_file.encode("utf-8", "surrogateescape") if backing_file else b""
    if len(name) > MAX_BACKING_NAME:
        raise ImageError("backing file name is longer than 1023 bytes")
    exts = _extension(EXT_BACKING_FORMAT, backing_format.encode("ascii")) if backing_format else b""
    table = _extension(EXT_FEATURE_NAMES, b"".join(
        _feature_entry(kind, bit, name) for kind, names in _FEATURE_TYPES.items()
        for bit, name in names.items()))
    end = struct.pack(">II", EXT_END, 0)
    if v3 and header_length + len(exts + table + end + name) <= 1 << cluster_bits:
        exts += table            # optional: QEMU also leaves it out of small clusters
    exts += end
    name_offset = header_length + len(exts) if name else 0
    out = _FIXED.pack(MAGIC, version, name_offset, len(name), cluster_bits, size, 0, l1_size,
                      l1_offset, reftable_offset, reftable_clusters, 0, 0)
    if v3:
        out += _V3.pack(0, 0, 0, refcount_order, header_length) + bytes(8)
    out += exts + name
    if len(out) > 1 << cluster_bits:
        raise ImageError("header and backing file name do not fit in one cluster")
    return out


def _extension(ext_type: int, data: bytes) -> bytes:
    return struct.pack(">II", ext_type, len(data)) + data + bytes(-len(data) % 8)


def _feature_entry(kind: int, bit: int, name) -> bytes:
    text = (name[0] if isinstance(name, tuple) else name).encode()
    return bytes([kind, bit]) + text.ljust(46, b"\0")
