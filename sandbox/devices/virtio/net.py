"""virtio-net: the paravirtual network card (virtio 1.2 section 5.1), over virtio-MMIO.

Queue 0 is the receive queue: the driver fills it with empty buffers, the device
writes each arriving frame into one. Queue 1 is the transmit queue: the driver
offers frames, the device sends them to the switch. Every frame, both ways, starts
with a 12-byte ``virtio_net_hdr`` (checksum and segmentation offload hints: we
offer no offloads, so the device writes zeros and ignores what the driver sends).

Where frames go: ``uplink(frame, now_ns)`` is the switch port this NIC is plugged
into (set by the machine builder). Frames from the switch arrive by ``deliver``
with a guest time; the device holds them until its own VM's clock reaches that
time (``next_deadline``/``advance``) and only then writes them into guest memory
and raises the interrupt.
"""
from __future__ import annotations

import heapq
import struct
import threading
from collections import Counter
from typing import Any, Callable

from sandbox.devices.base import DeviceContext
from sandbox.devices.virtio.mmio import DRIVER_OK, F_VERSION_1, NEEDS_RESET, VirtioMmioDevice
from sandbox.devices.virtio.virtqueue import Virtqueue, VirtqueueError
from sandbox.net.frames import mac_text

DEVICE_ID_NET = 1
F_MTU, F_MAC, F_STATUS = 1 << 3, 1 << 5, 1 << 16
S_LINK_UP = 1
NET_HDR = 12                    # flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, num_buffers
MTU = 1500
RX_QUEUE, TX_QUEUE = 0, 1
MAX_TX_BYTES = NET_HDR + 65535  # a longer chain is refused without being read
BACKLOG = 256                   # frames waiting for the guest's receive buffers

Uplink = Callable[[bytes, int], Any]


class VirtioNet(VirtioMmioDevice):
    description = "A virtio-net card: frames travel through shared rings, one exit per batch."
    device_id = DEVICE_ID_NET
    device_features = F_VERSION_1 | F_MAC | F_STATUS | F_MTU
    num_queues = 2
    queue_size = 256

    def __init__(self, name: str, ctx: DeviceContext | None = None, irq: int = 11,
                 mac: bytes = b"\x52\x54\x00\x12\x34\x56") -> None:
        self.mac = mac
        self.uplink: Uplink | None = None
        self.tx_frames = self.tx_bytes = self.rx_frames = self.rx_bytes = 0
        self.drops: Counter[str] = Counter()
        self._inbox: list[tuple[int, int, bytes]] = []     # (arrival time, order, frame): a heap
        self._order = 0
        self._starved = False            # a frame is due but the guest gave no receive buffer
        self._lock = threading.Lock()    # fast mode: the switch delivers from the sender's thread
        super().__init__(name, ctx, irq)

    def _reset_transport(self) -> None:
        super()._reset_transport()
        with self._lock:
            self._inbox = []
            self._starved = False

    @property
    def config(self) -> bytes:
        return self.mac + struct.pack("<HHH", S_LINK_UP, 1, MTU)

    @property
    def driver_ready(self) -> bool:
        return bool(self.status & DRIVER_OK) and not self.status & NEEDS_RESET

    # --- transmit: guest -> switch ------------------------------------------------------------
    def notify(self, queue: Virtqueue) -> None:
        if queue.index == TX_QUEUE:
            self._transmit(queue)
        else:
            self._starved = False                     # new receive buffers: deliver what waits
            self._receive_due(self.ctx.clock())

    def _transmit(self, queue: Virtqueue) -> None:
        mem = self.memory
        while (chain := queue.pop(mem)) is not None:
            parts = chain.readable()
            total = sum(b.length for b in parts)
            if total > MAX_TX_BYTES:
                self.drops["tx too long"] += 1
            elif total < NET_HDR:
                self.drops["tx without header"] += 1
            else:
                frame = b"".join(mem.read(b.addr, b.length) for b in parts)[NET_HDR:]
                self.tx_frames += 1
                self.tx_bytes += len(frame)
                if self.uplink is not None:
                    self.uplink(frame, self.ctx.clock())
            self.used(queue, chain.head, 0)

    # --- receive: switch -> guest ---------------------------------------------------------------
    def deliver(self, frame: bytes, at_ns: int) -> None:
        """The switch hands over a frame that reaches this NIC at guest time ``at_ns``."""
        with self._lock:
            if not self.driver_ready:
                self.drops["link down"] += 1
            elif len(self._inbox) >= BACKLOG:
                self.drops["rx backlog full"] += 1
            else:
                self._order += 1
                heapq.heappush(self._inbox, (at_ns, self._order, frame))

    def next_deadline(self) -> int | None:
        with self._lock:
            if self._inbox and not self._starved and self.driver_ready:
                return self._inbox[0][0]
        return None

    def advance(self, now_ns: int) -> None:
        self._receive_due(now_ns)

    def _receive_due(self, now_ns: int) -> None:
        queue = self.queues[RX_QUEUE]
        try:
            while self.driver_ready:
                with self._lock:
                    if not self._inbox or self._inbox[0][0] > now_ns:
                        return
                chain = queue.pop(self.memory)
                with self._lock:
                    if chain is None:
                        self._starved = True
                        return
                    _at, _order, frame = heapq.heappop(self._inbox)
                self._write_frame(queue, chain, frame)
        except VirtqueueError as e:
            queue.broken = str(e)
            self.fail(str(e))

    def _write_frame(self, queue: Virtqueue, chain: Any, frame: bytes) -> None:
        data = struct.pack("<BBHHHHH", 0, 0, 0, 0, 0, 0, 1) + frame     # num_buffers = 1
        room = sum(b.length for b in chain.writable())
        if room < len(data):
            self.drops["rx buffer too small"] += 1
            self.used(queue, chain.head, 0)
            return
        at = 0
        for buf in chain.writable():
            piece = data[at:at + buf.length]
            if not piece:
                break
            self.memory.write(buf.addr, piece)
            at += len(piece)
        self.rx_frames += 1
        self.rx_bytes += len(frame)
        self.used(queue, chain.head, len(data))

    # --- inspection ---------------------------------------------------------------------------------
    def counters(self) -> dict[str, Any]:
        return {"tx_frames": self.tx_frames, "rx_frames": self.rx_frames, "tx_bytes": self.tx_bytes,
                "rx_bytes": self.rx_bytes, "drops": sum(self.drops.values()),
                "drop_reasons": dict(sorted(self.drops.items()))}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "mac": mac_text(self.mac), "waiting": len(self._inbox), **self.counters()}
