"""Build a small corpus of broken and hostile qcow2 images.

Each case starts from a valid image (4 KiB clusters, one guest cluster written) and
damages one thing. ``CASES`` maps a name to (how to damage it, the operation that
must fail, words the one-line ImageError must contain). Run it to write the corpus:

    python tests/data/qcow2/make_corpus.py OUT_DIR
"""
from __future__ import annotations

import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(HERE))))

from sandbox.storage.create import create_image  # noqa: E402
from sandbox.storage.qcow2 import Qcow2Image  # noqa: E402

CLUSTER = 4096


def _u64(path: str, offset: int) -> int:
    with open(path, "rb") as f:
        f.seek(offset)
        return struct.unpack(">Q", f.read(8))[0]


def _patch(path: str, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def layout(path: str) -> dict:
    """Where the base image keeps its tables (read straight from the header)."""
    l1 = _u64(path, 40)
    l2 = _u64(path, l1) & 0x00FFFFFFFFFFFE00
    return {"reftable": _u64(path, 48), "refblock": _u64(path, _u64(path, 48)),
            "l1": l1, "l2": l2, "data": _u64(path, l2) & 0x00FFFFFFFFFFFE00}


def make_base(path: str, **options) -> None:
    create_image(path, size=1 << 20, cluster_size=CLUSTER, force=True, **options)
    with Qcow2Image(path) as img:
        img.write(0, b"x" * CLUSTER)


def field(offset: int, fmt: str, value: int):
    return lambda path, at: _patch(path, offset, struct.pack(fmt, value))


def at(where: str, fmt: str, value, plus: int = 0):
    """Overwrite the table named ``where`` (from ``layout``) at byte ``plus``."""
    return lambda path, at: _patch(path, at[where] + plus, struct.pack(fmt, value))


def truncate(size: int):
    return lambda path, at: os.truncate(path, size)


def backing(name: bytes, fmt: str | None = None):
    """Point the image at a backing file by rewriting the first cluster's tail."""
    def damage(path, at):
        offset = 2048
        _patch(path, 8, struct.pack(">QI", offset, len(name)))
        _patch(path, offset, name)
        if fmt:   # a backing-format extension replaces the feature table
            data = fmt.encode()
            padded = data.ljust(-(-len(data) // 8) * 8, b"\0")
            ext = struct.pack(">II", 0xE2792ACA, len(data)) + padded
            _patch(path, 112, ext + bytes(8))
    return damage


def snapshot_table(count: int, misalign: int = 0):
    """Append a zeroed cluster and claim ``count`` snapshots live there."""
    def damage(path, at):
        end = os.path.getsize(path)
        _patch(path, end, bytes(CLUSTER))
        _patch(path, 60, struct.pack(">IQ", count, end + misalign))
    return damage


def make_fifo(path: str, at) -> None:
    """A named pipe next to the image: opening it for reading would block forever."""
    fifo = os.path.join(os.path.dirname(path), "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)


def _both(*steps):
    def damage(path, at):
        for step in steps:
            step(path, at)
    return damage


# name -> (damage(path, layout), operation that must fail, words in the message)
CASES = {
    "too-short": (truncate(40), "open", "too short"),
    "v3-header-cut-short": (truncate(90), "open", "header_length"),
    "bad-version": (field(4, ">I", 4), "open", "version 4"),
    "cluster-bits-30": (field(20, ">I", 30), "open", "cluster_bits"),
    "cluster-bits-8": (field(20, ">I", 8), "open", "cluster_bits"),
    "encrypted": (field(32, ">I", 1), "open", "encrypted"),
    "unknown-incompatible-bit": (field(72, ">Q", 1 << 40), "open", "incompatible feature"),
    "external-data-file": (field(72, ">Q", 1 << 2), "open", "external data file"),
    "extended-l2": (field(72, ">Q", 1 << 4), "open", "extended L2"),
    "dirty-opened-for-writing": (field(72, ">Q", 1), "open", "dirty bit"),
    "header-length-100": (field(100, ">I", 100), "open", "header_length"),
    "refcount-order-7": (field(96, ">I", 7), "open", "refcount_order"),
    "huge-virtual-size": (field(24, ">Q", 1 << 62), "open", "too large"),
    "size-beyond-l1": (field(24, ">Q", 1 << 40), "open", "L1 table is too small"),
    "huge-l1-size": (field(36, ">I", 1 << 30), "open", "too large"),
    "l1-unaligned": (field(40, ">Q", 3 * CLUSTER + 8), "open", "not cluster-aligned"),
    "l1-past-eof": (field(40, ">Q", 1 << 40), "open", "past the end"),
    "l1-on-header": (field(40, ">Q", 0), "open", "overlaps the header"),
    "reftable-on-l1": (lambda p, at: _patch(p, 48, struct.pack(">Q", at["l1"])),
                       "open", "overlaps"),
    "reftable-none": (field(56, ">I", 0), "open", "no refcount table"),
    "reftable-huge": (field(56, ">I", 1 << 20), "open", "too large"),
    "reftable-past-eof": (field(48, ">Q", 1 << 30), "open", "past the end"),
    "refblock-unaligned": (at("reftable", ">Q", 2 * CLUSTER + 16), "open", "not cluster-aligned"),
    "refblock-past-eof": (at("reftable", ">Q", 1 << 40), "open", "past the end"),
    "l2-past-eof": (at("l1", ">Q", (1 << 63) | 1 << 40), "open", "past the end"),
    "l1-entry-reserved-bits": (lambda p, at: _patch(p, at["l1"], struct.pack(
        ">Q", (1 << 63) | at["l2"] | 1 << 60)), "open", "reserved"),
    "l2-on-reftable": (lambda p, at: _patch(p, at["l1"], struct.pack(
        ">Q", (1 << 63) | at["reftable"])), "open", "overlaps"),
    "data-past-eof": (at("l2", ">Q", (1 << 63) | 1 << 40), "read", "past the end"),
    "data-unaligned": (lambda p, at: _patch(p, at["l2"], struct.pack(
        ">Q", (1 << 63) | at["data"] + 16)), "read", "unaligned"),
    "compressed-cluster": (at("l2", ">Q", 1 << 62 | 5 * CLUSTER), "read", "compressed"),
    "data-onto-l1": (lambda p, at: _patch(p, at["l2"], struct.pack(
        ">Q", (1 << 63) | at["l1"])), "write", "maps onto the L1 table"),
    "truncated-l2": (lambda p, at: os.truncate(p, at["l2"]), "open", "past the end"),
    "backing-name-too-long": (_both(field(8, ">Q", 2048), field(16, ">I", 2000)), "open", "1023"),
    "backing-name-outside": (_both(field(8, ">Q", CLUSTER - 4), field(16, ">I", 100)),
                             "open", "outside the first cluster"),
    "backing-missing": (backing(b"no-such-base.img"), "open", "not found"),
    "backing-is-a-fifo": (_both(make_fifo, backing(b"fifo")), "open", "not a regular file"),
    "backing-self-loop": (backing(b"backing-self-loop.qcow2"), "open", "loops"),
    "backing-format-vmdk": (backing(b"base.raw", "vmdk"), "open", "'vmdk' is not supported"),
    "snapshot-count-huge": (snapshot_table(1 << 20), "open", "snapshots"),
    "snapshot-table-truncated": (snapshot_table(1000), "open", "truncated"),
    "snapshot-table-unaligned": (snapshot_table(1, misalign=8), "open", "not cluster-aligned"),
    "extension-past-cluster": (lambda p, at: _patch(p, 112, struct.pack(">II", 0x12345, 1 << 20)),
                               "open", "header extension"),
}


def build(folder: str) -> dict[str, tuple[str, str, str]]:
    """Write every case into ``folder``; returns name -> (path, operation, words)."""
    os.makedirs(folder, exist_ok=True)
    base = os.path.join(folder, "base.qcow2")
    make_base(base)
    with open(os.path.join(folder, "base.raw"), "wb") as f:
        f.write(bytes(1 << 20))
    where = layout(base)
    out = {}
    for name, (damage, operation, words) in CASES.items():
        path = os.path.join(folder, f"{name}.qcow2")
        shutil.copyfile(base, path)
        damage(path, where)
        out[name] = (path, operation, words)
    loop_a, loop_b = (os.path.join(folder, f"loop-{x}.qcow2") for x in "ab")
    for this, other in ((loop_a, "loop-b.qcow2"), (loop_b, "loop-a.qcow2")):
        shutil.copyfile(base, this)
        backing(other.encode())(this, where)
    out["backing-loop"] = (loop_a, "open", "loops")
    return out


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    for case, (path, operation, words) in build(target).items():
        print(f"{case:28} {operation:6} {words!r}")
