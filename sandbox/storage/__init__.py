"""Virtual disks stored as files. ``open_image`` picks the format from the header."""
from __future__ import annotations

from sandbox.storage.base import SECTOR, BlockImage
from sandbox.storage.raw import RawImage


def open_image(path: str, readonly: bool = False) -> BlockImage:
    """Open a disk image, detecting its format (qcow2 by its magic, else raw)."""
    import os  # noqa: PLC0415
    import stat  # noqa: PLC0415
    from sandbox.errors import ImageError  # noqa: PLC0415
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ImageError(f"{path}: disk image not found") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot open disk image ({e.strerror})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISBLK(mode)):
        raise ImageError(f"{path}: not a regular file or block device")
    with_magic = b""
    try:
        with open(path, "rb") as f:
            with_magic = f.read(4)
    except OSError:
        pass  # RawImage raises the one-line error
    if with_magic == b"QFI\xfb":
        from sandbox.storage.qcow2 import Qcow2Image  # noqa: PLC0415 (lazy: optional format)
        return Qcow2Image(path, readonly=readonly)
    return RawImage(path, readonly=readonly)


__all__ = ["SECTOR", "BlockImage", "RawImage", "open_image"]
