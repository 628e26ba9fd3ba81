"""The image file seen as clusters: bounded reads and writes, and who owns which cluster.

Two guards keep a corrupt or hostile image from turning into damage:

* ``ClusterFile.pwrite`` refuses any write past the clusters the image already has or
  that the allocator just handed out, so a bad offset can never grow the file wildly.
* ``Layout`` records which metadata structure (header, L1, L2, refcount table or block,
  snapshot table) owns each cluster. Tables that overlap are rejected when the image
  opens, and a guest write aimed at a metadata cluster is refused (QEMU calls this the
  "overlap check").
"""
from __future__ import annotations

import os

from sandbox.errors import ImageError


class ClusterFile:
    def __init__(self, fd: int, path: str, cluster_bits: int) -> None:
        self.fd = fd
        self.path = path
        self.cluster_bits = cluster_bits
        self.cluster_size = 1 << cluster_bits
        self.size = os.fstat(fd).st_size
        self.limit = self.round_up(self.size)   # writes must end at or below this offset

    def round_up(self, offset: int) -> int:
        return -(-offset // self.cluster_size) * self.cluster_size

    @property
    def clusters(self) -> int:
        """Clusters the file spans (a partial last cluster counts)."""
        return self.round_up(self.size) >> self.cluster_bits

    def pread(self, offset: int, length: int) -> bytes:
        """Read; bytes past the end of the file read as zeros."""
        try:
            data = os.pread(self.fd, length, offset) if offset < self.size else b""
        except OSError as e:
            raise ImageError(f"read failed at {offset:#x} ({e.strerror})") from None
        return data + bytes(length - len(data)) if len(data) < length else data

    def pwrite(self, offset: int, data: bytes) -> None:
        if offset < 0 or offset + len(data) > self.limit:
            raise ImageError(f"refused a write at {offset:#x} outside the image's clusters")
        view = memoryview(data)
        try:
            while view:
                done = os.pwrite(self.fd, view, offset)
                view, offset = view[done:], offset + done
        except OSError as e:
            raise ImageError(f"write failed at {offset:#x} ({e.strerror})") from None
        self.size = max(self.size, offset)

    def grant(self, cluster: int, count: int = 1) -> None:
        """The allocator handed out these clusters: writes may now reach them."""
        self.limit = max(self.limit, (cluster + count) << self.cluster_bits)

    def sync(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError as e:
            raise ImageError(f"fsync failed ({e.strerror})") from None


class Layout:
    """Which metadata structure owns each host cluster."""

    def __init__(self, cluster_bits: int) -> None:
        self.cluster_bits = cluster_bits
        self.owner: dict[int, str] = {}

    def _clusters(self, offset: int, length: int) -> range:
        first = offset >> self.cluster_bits
        last = (offset + max(length, 1) - 1) >> self.cluster_bits
        return range(first, last + 1)

    def claim(self, offset: int, length: int, kind: str, shareable: bool = False) -> None:
        """Record a structure; ImageError if it overlaps a different one.

        ``shareable``: the same kind may claim a cluster twice (L2 tables shared by
        several L1 tables after a snapshot).
        """
        for cluster in self._clusters(offset, length):
            prev = self.owner.get(cluster)
            if prev is not None and not (shareable and prev == kind):
                raise ImageError(f"the {kind} at {offset:#x} overlaps the {prev}")
            self.owner[cluster] = kind

    def release(self, offset: int, length: int) -> None:
        for cluster in self._clusters(offset, length):
            self.owner.pop(cluster, None)

    def kind_at(self, cluster: int) -> str | None:
        return self.owner.get(cluster)
