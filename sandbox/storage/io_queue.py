"""The I/O queue of one physical disk: every VM disk that lives on it sends its requests here.

    guest driver -> device model (ATA, virtio-blk) -> DiskPort.submit -> IoQueue
        -> waits in its VM's FIFO until (1) a disk queue is free, (2) the VM's token
           buckets allow it and (3) it is the VM's turn by shares
        -> in service for the time the disk's latency model says
        -> done: the device model moves the data and interrupts the guest

Turns by shares are start-time fair queueing (SFQ, as in vSphere's SIOC and mClock):
each VM carries a tag that grows by the cost of each request it starts divided by its
shares; the next request comes from the backlogged VM with the smallest tag. A request
costs one unit per 32 KiB started (a 4 KiB read is 1, a 1 MiB read is 32), so VMs with
equal shares get equal I/Os of equal size. A VM that had nothing queued re-enters at
the current tag, so idling banks no credit.

Time is guest time. A request's completion is a device deadline of its VM (see
``DiskPort``), so the scheduler stops a vCPU, or skips idle time, exactly then. VMs run
one after another within a scheduler quantum, so a VM whose clock is behind may hand
in a request "in the past"; the queue takes it as arriving when it learns of it,
which can delay it by up to one quantum. Decisions never depend on wall-clock time:
every run gives the same schedule.

In fast mode VMs run on several host threads at once, so the queue's state is behind
a lock; a VM's completions still run only on its own thread (``DiskPort``).
"""
from __future__ import annotations

import heapq
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from sandbox.storage.latency import KINDS, VM_SPACING, Request
from sandbox.storage.token_bucket import TokenBucket

if TYPE_CHECKING:
    from sandbox.storage.disk_port import DiskPort

NEVER = 1 << 62
COST_UNIT = 32 << 10          # bytes per unit of fair-share cost
MAX_CHANNELS = 256            # the ideal disk's "unlimited" parallelism, in practice


@dataclass(eq=False)
class IoRequest:
    vm: str
    op: str                   # "read", "write" or "flush"
    lba: int                  # first sector on the VM's disk
    length: int               # bytes
    on_done: Callable[["IoRequest"], None]
    queued_ns: int
    seq: int = 0
    started_ns: int | None = None
    done_ns: int | None = None
    stream: "Stream | None" = None

    @property
    def latency_ns(self) -> int:
        return (self.done_ns or 0) - self.queued_ns


def request_cost(req: IoRequest) -> int:
    """Fair-share cost: one unit per 32 KiB started (a flush costs one)."""
    return max(1, -(-req.length // COST_UNIT))


@dataclass(eq=False)
class Stream:
    """One VM's requests on this disk: its FIFO, its limits and its fair-share tag."""
    vm: str
    order: int                # attach order: the tie-breaker, and where its disk sits
    shares: int
    buckets: list[tuple[TokenBucket, Callable[[IoRequest], float]]]
    pending: deque[IoRequest] = field(default_factory=deque)
    finished: deque[IoRequest] = field(default_factory=deque)   # done, not yet seen by the VM
    in_service: int = 0
    tag: float = 0.0

    def ready_at(self, req: IoRequest, now: int) -> int:
        """When the VM's token buckets let ``req`` start (not before ``now``)."""
        if not self.buckets:
            return now
        return max([now] + [b.ready_at(cost(req), now) for b, cost in self.buckets])


class IoQueue:
    def __init__(self, name: str, kind: str, publish: Callable[..., Any] | None = None,
                 wants: Callable[[str], bool] | None = None) -> None:
        self.name = name
        self.kind = kind
        self.model = KINDS[kind].make()
        channels = min(self.model.channels, MAX_CHANNELS)
        self.idle: list[tuple[int, int]] = [(0, i) for i in range(channels)]   # heap of (idle since, queue)
        self.in_service: dict[int, IoRequest] = {}                             # queue -> its request
        self.streams: list[Stream] = []
        self.vtime = 0.0                          # SFQ's virtual time: the last start tag
        self.busy_ns = 0                          # disk time spent serving requests
        self.completed = 0
        self._seq = 0
        self.lock = threading.RLock()             # fast mode: VMs on several host threads
        self._publish = publish
        self._wants = wants or (lambda kind: publish is not None)

    # --- VMs ---------------------------------------------------------------------------
    def attach(self, vm: str, shares: int = 1000, iops_limit: float | None = None,
               bandwidth_mib: float | None = None) -> "DiskPort":
        from sandbox.storage.disk_port import DiskPort  # noqa: PLC0415 (the two go together)
        buckets: list[tuple[TokenBucket, Callable[[IoRequest], float]]] = []
        if iops_limit:
            buckets.append((TokenBucket(iops_limit), lambda r: 1.0))
        if bandwidth_mib:
            buckets.append((TokenBucket(bandwidth_mib * (1 << 20), min_capacity=4096),
                            lambda r: float(r.length)))
        stream = Stream(vm, len(self.streams), shares, buckets)
        self.streams.append(stream)
        return DiskPort(self, stream)

    # --- requests ------------------------------------------------------------------------
    def submit(self, stream: Stream, req: IoRequest) -> None:
        with self.lock:
            self._seq += 1
            req.seq = self._seq
            req.stream = stream
            stream.pending.append(req)
            self._event("disk.queued", req)
            self.run_until(req.queued_ns)

    def run_until(self, now: int) -> None:
        """Play the disk's timeline forward to guest time ``now``: finish requests and
        start waiting ones, in time order."""
        with self.lock:
            while True:
                done_at, channel = self._next_completion()
                start_at, start = self._next_start()
                if min(done_at, start_at) > now:
                    return
                if done_at <= start_at:
                    self._finish(channel)
                else:
                    self._start(*start, start_at)

    def next_event(self) -> int | None:
        """Guest time of the next completion or start, or None when the disk is idle."""
        with self.lock:
            t = min(self._next_completion()[0], self._next_start()[0])
        return None if t >= NEVER else t

    # --- the timeline ---------------------------------------------------------------------
    def _next_completion(self) -> tuple[int, int]:
        if not self.in_service:
            return NEVER, -1
        channel = min(self.in_service, key=lambda i: (self.in_service[i].done_ns, self.in_service[i].seq))
        return self.in_service[channel].done_ns, channel

    def _next_start(self) -> tuple[int, tuple[Stream, int] | None]:
        """When the next request can start, and (its stream, the queue it goes to)."""
        if not self.idle:
            return NEVER, None
        idle_since, channel = self.idle[0]
        ready = [(s.ready_at(s.pending[0], max(idle_since, s.pending[0].queued_ns)), s)
                 for s in self.streams if s.pending]
        if not ready:
            return NEVER, None
        if len(ready) == 1:                            # one VM waiting: nothing to choose
            return max(idle_since, ready[0][0]), (ready[0][1], channel)
        when = max(idle_since, min(t for t, _ in ready))
        chosen = min((s for t, s in ready if t <= when), key=lambda s: (max(self.vtime, s.tag), s.order))
        return when, (chosen, channel)

    def _start(self, stream: Stream, channel: int, now: int) -> None:
        heapq.heappop(self.idle)
        req = stream.pending.popleft()
        for bucket, cost in stream.buckets:
            bucket.take(cost(req), now)
        service = self.model.service_ns(Request(req.op, stream.order * VM_SPACING + req.lba * 512, req.length))
        req.started_ns = now
        req.done_ns = now + service
        start_tag = max(self.vtime, stream.tag)
        stream.tag = start_tag + request_cost(req) / stream.shares
        self.vtime = start_tag
        self.in_service[channel] = req
        stream.in_service += 1
        self.busy_ns += service
        self._event("disk.started", req)

    def _finish(self, channel: int) -> None:
        req = self.in_service.pop(channel)
        heapq.heappush(self.idle, (req.done_ns, channel))
        self.completed += 1
        stream = req.stream
        stream.in_service -= 1
        stream.finished.append(req)
        self._event("disk.done", req)

    def _event(self, kind: str, req: IoRequest) -> None:
        if self._publish is None or not self._wants(kind):
            return
        time = {"disk.queued": req.queued_ns, "disk.started": req.started_ns, "disk.done": req.done_ns}[kind]
        data = {"disk": self.name, "op": req.op, "lba": req.lba, "bytes": req.length, "request": req.seq}
        if kind == "disk.done":
            data["latency_us"] = round(req.latency_ns / 1000, 3)
        self._publish(kind, vm=req.vm, time_ns=time, **data)

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "busy_ns": self.busy_ns, "completed": self.completed,
                "in_service": len(self.in_service),
                "waiting": {s.vm: len(s.pending) for s in self.streams}}
