"""Making new disk images: raw files and qcow2 images (optionally overlays on a backing file).

A new qcow2 image is laid out as QEMU does it: the header in cluster 0, then the
refcount table, the refcount blocks, and the (empty) L1 table. Every one of those
clusters has refcount 1; no guest data is allocated until the guest writes.

The image is written to a temporary file and renamed into place, so a crash leaves
either no image or a complete one.
"""
from __future__ import annotations

import os
import re

from sandbox.errors import ImageError
from sandbox.storage.qcow2_header import MAX_CLUSTER_BITS, MAX_L1_BYTES, MAX_VIRTUAL_SIZE, \
    MIN_CLUSTER_BITS, pack_header
from sandbox.storage.qcow2_refcount import RefBlock
from sandbox.storage.qcow2_tables import be64_bytes

SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
DEFAULT_CLUSTER_SIZE = 65536


def parse_size(text: str) -> int:
    """'64M', '1G', '512K', '1.5G', '1048576' -> bytes (K/M/G/T are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ImageError(f"'{text}' is not a size (try 64M, 1G or a byte count)")
    return int(float(match.group(1)) * SIZE_SUFFIXES[match.group(2).upper()])


def create_image(path: str, fmt: str = "qcow2", size: int | None = None,
                 backing: str | None = None, cluster_size: int = DEFAULT_CLUSTER_SIZE,
                 version: int = 3, refcount_bits: int = 16, force: bool = False) -> None:
    """Create a disk image file.

    ``backing`` is a path as the user typed it (relative to the current directory); it
    is stored relative to the new image's folder when it lies inside that folder, and
    absolute otherwise, so the pair can be moved together.
    """
    creator = CREATORS.get(fmt)
    if creator is None:
        raise ImageError(f"unknown image format '{fmt}' (choose {', '.join(CREATORS)})")
    path = str(path)
    if os.path.exists(path) and not force:
        raise ImageError(f"{path} already exists (use --force to overwrite it)")
    stored_backing = backing_format = None
    if backing is not None:
        if fmt != "qcow2":
            raise ImageError(f"a {fmt} image cannot have a backing file (use qcow2)")
        stored_backing, backing_format, backing_size = _describe_backing(path, backing)
        size = backing_size if size is None else size
    if size is None:
        raise ImageError("give a size (e.g. --size 64M) or a backing file")
    if size <= 0 or size > MAX_VIRTUAL_SIZE:
        raise ImageError(f"size {size} is out of range")
    size = -(-size // 512) * 512                      # whole sectors, as qemu-img does
    content = creator(size=size, backing=stored_backing, backing_format=backing_format,
                      cluster_size=cluster_size, version=version, refcount_bits=refcount_bits)
    _write_atomically(path, content, size)


def _describe_backing(path: str, backing: str) -> tuple[str, str, int]:
    from sandbox.storage import open_image  # noqa: PLC0415 (storage/__init__ imports us lazily)
    target = os.path.abspath(backing)
    if os.path.exists(path) and os.path.samefile(path, target):
        raise ImageError(f"{path} cannot be its own backing file")
    with _closing(open_image(target, readonly=True)) as base:
        fmt, size = base.format, base.size()
    folder = os.path.dirname(os.path.abspath(path))
    relative = os.path.relpath(target, folder)
    stored = target if relative.startswith(os.pardir) else relative
    return stored, fmt, size


class _closing:
    def __init__(self, image) -> None:
        self.image = image

    def __enter__(self):
        return self.image

    def __exit__(self, *exc) -> None:
        self.image.close()


def raw_content(*, size: int, **_ignored) -> None:
    """A raw image is just ``size`` bytes (a sparse file): nothing to lay out."""
    return None


def qcow2_content(*, size: int, backing: str | None = None, backing_format: str | None = None,
                  cluster_size: int = DEFAULT_CLUSTER_SIZE, version: int = 3,
                  refcount_bits: int = 16) -> bytes:
    """The bytes of an empty qcow2 image: header, refcount table and blocks, L1 table."""
    cluster_bits = cluster_size.bit_length() - 1
    if cluster_size != 1 << cluster_bits or \
            not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise ImageError(f"cluster size {cluster_size} must be a power of two from 512 to 2M")
    if version not in (2, 3):
        raise ImageError(f"qcow2 version {version} is not supported (2 or 3)")
    order = refcount_bits.bit_length() - 1
    if refcount_bits != 1 << order or order > 6 or (version == 2 and order != 4):
        raise ImageError(f"refcount bits {refcount_bits} must be a power of two up to 64 "
                         "(16 for version 2)")
    cs = cluster_size
    l1_size = -(-size // (cs * (cs // 8)))
    if 8 * l1_size > MAX_L1_BYTES:
        raise ImageError(f"size {size} needs an L1 table over 32 MiB: use bigger clusters")
    l1_clusters = -(-8 * l1_size // cs)
    per_block = cs * 8 // refcount_bits
    table_clusters, blocks = 1, 1
    while True:                                  # the refcount blocks must count themselves
        total = 1 + table_clusters + blocks + l1_clusters
        need_blocks = -(-total // per_block)
        need_table = -(-8 * need_blocks // cs)
        if (need_blocks, need_table) == (blocks, table_clusters):
            break
        blocks, table_clusters = max(blocks, need_blocks), max(table_clusters, need_table)
    first_block = 1 + table_clusters
    l1_offset = (first_block + blocks) * cs
    header = pack_header(version=version, cluster_bits=cluster_bits, size=size, l1_size=l1_size,
                         l1_offset=l1_offset, reftable_offset=cs,
                         reftable_clusters=table_clusters, refcount_order=order,
                         backing_file=backing, backing_format=backing_format)
    table = [(first_block + i) * cs for i in range(blocks)]
    table += [0] * (table_clusters * cs // 8 - len(table))
    refblocks = b""
    for i in range(blocks):
        block = RefBlock(bytes(cs), refcount_bits)
        for cluster in range(i * per_block, min(total, (i + 1) * per_block)):
            block.set(cluster - i * per_block, 1)
        refblocks += block.to_bytes()
    return header.ljust(cs, b"\0") + be64_bytes(table) + refblocks + bytes(l1_clusters * cs)


CREATORS = {"qcow2": qcow2_content, "raw": raw_content}


def _write_atomically(path: str, content: bytes | None, size: int) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if content is None:
                os.ftruncate(fd, size)
            else:
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise ImageError(f"cannot create {path} ({e.strerror})") from None
