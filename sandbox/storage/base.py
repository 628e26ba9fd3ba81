"""The interface every virtual disk format implements (raw, qcow2, ...).

Device models (ATA, virtio-blk) talk to a ``BlockImage`` in bytes; they never know
the file format. Offsets and lengths are byte counts; device models use multiples of
512-byte sectors.
"""
from __future__ import annotations

from typing import Protocol


SECTOR = 512


class BlockImage(Protocol):
    path: str
    readonly: bool
    format: str

    def size(self) -> int:
        """Virtual disk size in bytes (what the guest sees)."""

    def read(self, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset``; past the end reads zeros."""

    def write(self, offset: int, data: bytes) -> None:
        """Write; raises ``PermissionError`` on a read-only image and ``ImageError``
        past the end (virtual disks have a fixed size)."""

    def flush(self) -> None:
        """Make every acknowledged write durable (fsync)."""

    def close(self) -> None:
        ...
