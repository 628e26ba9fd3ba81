"""Copying a disk into a new image of any format (``qemu-img convert``).

The copy reads the source as the guest would see it (backing chain resolved, active
snapshot state) and writes only the non-zero parts, so the result is sparse: a raw
file with holes, or a qcow2 image that allocates only clusters holding data. Snapshots
and backing files are not carried over: the output stands alone.
"""
from __future__ import annotations

import os

from sandbox.errors import ImageError
from sandbox.storage.create import DEFAULT_CLUSTER_SIZE, create_image

CHUNK = 1 << 20          # bytes read from the source at a time
RAW_GRANULE = 65536      # a raw output skips all-zero runs of this size

# Output format when none is given, by file name suffix (anything else: raw, as qemu-img).
FORMAT_BY_SUFFIX = {".qcow2": "qcow2", ".qcow": "qcow2", ".img": "raw", ".raw": "raw"}


def guess_format(path: str) -> str:
    return FORMAT_BY_SUFFIX.get(os.path.splitext(path)[1].lower(), "raw")


def convert_image(src: str, dst: str, fmt: str | None = None,
                  cluster_size: int = DEFAULT_CLUSTER_SIZE, force: bool = False) -> dict:
    """Copy ``src`` into a new image ``dst``; returns {'size', 'written', 'format'}."""
    from sandbox.storage import open_image  # noqa: PLC0415 (storage/__init__ imports lazily)
    fmt = fmt or guess_format(dst)
    if os.path.exists(dst):
        if os.path.exists(src) and os.path.samefile(src, dst):
            raise ImageError(f"{dst} is the source image: convert into a new file")
        if not force:
            raise ImageError(f"{dst} already exists (use --force to overwrite it)")
    folder = os.path.dirname(os.path.abspath(dst))
    tmp = os.path.join(folder, f".{os.path.basename(dst)}.{os.getpid()}.convert")
    source = open_image(src, readonly=True)
    try:
        size = source.size()
        create_image(tmp, fmt, size=size, cluster_size=cluster_size, force=True)
        out = open_image(tmp)
        try:
            granule = cluster_size if fmt == "qcow2" else RAW_GRANULE
            written = _copy(source, out, size, granule)
            out.flush()
        finally:
            out.close()
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    finally:
        source.close()
    return {"size": size, "written": written, "format": fmt}


def _copy(source, out, size: int, granule: int) -> int:
    """Copy every granule that is not all zeros; adjacent ones go in one write."""
    written = 0
    chunk = max(CHUNK, granule)
    for base in range(0, size, chunk):
        data = source.read(base, min(chunk, size - base))
        for start, end in _nonzero_runs(data, granule):
            out.write(base + start, data[start:end])
            written += end - start
    return written


def _nonzero_runs(data: bytes, granule: int) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for pos in range(0, len(data), granule):
        piece = data[pos:pos + granule]
        if piece.count(0) == len(piece):
            continue
        if runs and runs[-1][1] == pos:
            runs[-1] = (runs[-1][0], pos + len(piece))
        else:
            runs.append((pos, pos + len(piece)))
    return runs
