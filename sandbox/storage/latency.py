"""How long a physical disk takes to serve one request, per kind of disk, in guest time.

A model is deterministic: the same requests in the same order take the same time on
every machine, so a noisy neighbour or a rate limit shows up identically in every run.

| kind  | queues | what a request costs |
| ----- | ------ | -------------------- |
| hdd   | 1      | seek (grows with the square root of the distance the head travels) + half a rotation + transfer; nothing but the transfer when it continues where the last one ended |
| ssd   | 1      | a flat latency + transfer (no moving parts, one command queue) |
| nvme  | 8      | a small flat latency + transfer, eight requests in service at once |
| ideal | many   | nothing: the host page cache answers at once (the default when [host] names no disks) |

Figures are round numbers of the right order for a 7,200 rpm SATA disk, a SATA SSD and
an NVMe SSD; they are not a calibration of any product.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

US = 1_000
MS = 1_000_000
MIB = 1 << 20

# Where VM disks sit on one physical disk: the n-th VM's disk starts at n * VM_SPACING,
# so switching between two VMs' disks moves an HDD's head.
VM_SPACING = 64 << 30


@dataclass(frozen=True)
class Request:
    """What a model needs to know about a request."""
    op: str               # "read", "write" or "flush"
    offset: int           # byte offset on the physical disk
    length: int           # bytes


def _transfer_ns(length: int, mib_per_s: float) -> int:
    return int(length * 1e9 / (mib_per_s * MIB))


class HddModel:
    """A 7,200 rpm disk with one head: a request away from where the head is pays a
    seek and, on average, half a rotation before its sectors pass under the head."""
    channels = 1
    capacity = 1 << 40                 # 1 TiB: the full stroke
    track_to_track_ns = int(0.5 * MS)
    full_stroke_ns = 16 * MS
    half_rotation_ns = int(60e9 / 7200 / 2)     # 4.17 ms
    mib_per_s = 150.0
    flush_ns = int(60e9 / 7200)        # the write cache reaches the platter: one rotation

    def __init__(self) -> None:
        self.head = 0                  # byte offset just after the last request

    def service_ns(self, req: Request) -> int:
        if req.op == "flush":
            return self.flush_ns
        cost = _transfer_ns(req.length, self.mib_per_s)
        if req.offset != self.head:
            distance = min(abs(req.offset - self.head), self.capacity) / self.capacity
            seek = self.track_to_track_ns + (self.full_stroke_ns - self.track_to_track_ns) * math.sqrt(distance)
            cost += int(seek) + self.half_rotation_ns
        self.head = req.offset + req.length
        return cost


class FlatModel:
    """A fixed cost per request plus the transfer at a fixed rate."""

    def __init__(self, channels: int, latency_ns: int, mib_per_s: float, flush_ns: int) -> None:
        self.channels = channels
        self.latency_ns = latency_ns
        self.mib_per_s = mib_per_s
        self.flush_ns = flush_ns

    def service_ns(self, req: Request) -> int:
        if req.op == "flush":
            return self.flush_ns
        return self.latency_ns + _transfer_ns(req.length, self.mib_per_s)


class IdealModel:
    """No latency and no limit on parallel requests."""
    channels = 1 << 30

    def service_ns(self, req: Request) -> int:
        return 0


@dataclass(frozen=True)
class DiskKind:
    name: str
    description: str
    make: Callable[[], object]


KINDS: dict[str, DiskKind] = {
    "hdd": DiskKind("hdd", "7,200 rpm hard disk: one head, seek + rotation + 150 MiB/s", HddModel),
    "ssd": DiskKind("ssd", "SATA SSD: one command queue, 100 us per request + 500 MiB/s",
                    lambda: FlatModel(1, 100 * US, 500.0, 100 * US)),
    "nvme": DiskKind("nvme", "NVMe SSD: 8 parallel queues, 20 us per request + 2,000 MiB/s each",
                     lambda: FlatModel(8, 20 * US, 2000.0, 20 * US)),
    "ideal": DiskKind("ideal", "the host page cache: every request completes at once", IdealModel),
}
