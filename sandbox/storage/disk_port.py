"""A VM disk's side of its physical disk's I/O queue, and what the report says about it.

A device model (ATA, virtio-blk) calls ``submit`` with a completion callback. The
callback runs when the VM's guest time reaches the request's completion: inside
``submit`` itself when the disk answers at once, otherwise from ``advance``, which the
device calls from its own ``advance`` when its deadline (``next_deadline``) comes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sandbox.storage.io_queue import IoRequest

if TYPE_CHECKING:
    from sandbox.storage.io_queue import IoQueue, Stream

SHARES = {"low": 500, "normal": 1000, "high": 2000}     # vSphere's disk shares per VM


def shares_value(shares: str | int) -> int:
    return SHARES[shares] if isinstance(shares, str) else int(shares)


def percentile(sorted_values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of an already sorted list (0 for an empty one)."""
    if not sorted_values:
        return 0
    rank = max(1, -(-int(fraction * 1000) * len(sorted_values) // 1000))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class DiskStats:
    reads: int = 0
    writes: int = 0
    flushes: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    latencies_ns: list[int] = field(default_factory=list)
    outstanding: int = 0
    queue_depth_max: int = 0
    first_ns: int | None = None       # first request handed in
    last_ns: int = 0                  # last completion seen by the VM
    exits: int = 0                    # guest accesses to the disk's registers (each one an exit)

    def record(self, req: IoRequest) -> None:
        kind = {"read": "reads", "write": "writes", "flush": "flushes"}[req.op]
        setattr(self, kind, getattr(self, kind) + 1)
        if req.op == "read":
            self.bytes_read += req.length
        elif req.op == "write":
            self.bytes_written += req.length
        self.latencies_ns.append(req.latency_ns)
        self.last_ns = max(self.last_ns, req.done_ns or 0)


class DiskPort:
    def __init__(self, queue: "IoQueue", stream: "Stream") -> None:
        self.queue = queue
        self.stream = stream
        self.stats = DiskStats()
        self._delivering = False

    @property
    def vm(self) -> str:
        return self.stream.vm

    def submit(self, op: str, lba: int, length: int, on_done: Callable[[IoRequest], None],
               now: int) -> IoRequest:
        req = IoRequest(self.vm, op, lba, length, on_done, now)
        st = self.stats
        st.outstanding += 1
        st.queue_depth_max = max(st.queue_depth_max, st.outstanding)
        if st.first_ns is None:
            st.first_ns = now
        self.queue.submit(self.stream, req)
        self._deliver(now)
        return req

    def next_deadline(self) -> int | None:
        s = self.stream
        with self.queue.lock:
            times = [r.done_ns for r in s.finished]
            if s.pending or s.in_service:
                t = self.queue.next_event()
                if t is not None:
                    times.append(t)
        return min(times) if times else None

    def advance(self, now: int) -> None:
        self.queue.run_until(now)
        self._deliver(now)

    def _deliver(self, now: int) -> None:
        if self._delivering:              # a callback handed in a new request: the loop below sees it
            return
        self._delivering = True
        try:
            finished = self.stream.finished
            while True:
                with self.queue.lock:             # the disk may finish requests on other threads
                    if not finished:
                        return
                    req = finished[0] if len(finished) == 1 else min(finished, key=lambda r: (r.done_ns, r.seq))
                    if req.done_ns > now:
                        return
                    finished.remove(req)
                self.stats.outstanding -= 1
                self.stats.record(req)
                req.on_done(req)                  # on this VM's thread, without the lock
        finally:
            self._delivering = False

    # --- the report -----------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        st = self.stats
        lat = sorted(st.latencies_ns)
        ops = st.reads + st.writes
        span = st.last_ns - (st.first_ns or 0)
        kib = (st.bytes_read + st.bytes_written) / 1024
        return {
            "physical_disk": self.queue.name, "kind": self.queue.kind,
            "reads": st.reads, "writes": st.writes, "flushes": st.flushes,
            "bytes_read": st.bytes_read, "bytes_written": st.bytes_written,
            "iops": round(ops * 1e9 / span, 1) if span > 0 else 0.0,
            "latency_us_p50": round(percentile(lat, 0.50) / 1000, 1),
            "latency_us_p99": round(percentile(lat, 0.99) / 1000, 1),
            "queue_depth_max": st.queue_depth_max,
            "exits": st.exits,
            "exits_per_kib": round(st.exits / kib, 2) if kib else None,
        }
