"""A split virtqueue in guest memory (virtio 1.2 section 2.7).

Three areas the driver allocates and tells the device about:

    descriptor table  16 bytes each: addr (u64), len (u32), flags (u16), next (u16)
    available ring    flags (u16), idx (u16), ring[size] (u16): heads the driver offers
    used ring         flags (u16), idx (u16), ring[size] of (id u32, len u32): heads done

The device only ever reads and writes guest memory through ``GuestMemory`` (DMA), so
a buggy or hostile driver can at worst hurt its own VM: every address is checked to be
guest RAM, and a descriptor chain that loops or is too long is refused.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.vm.memory import GuestMemory

DESC_F_NEXT = 1
DESC_F_WRITE = 2          # the device writes this buffer (else it reads it)
DESC_F_INDIRECT = 4
MAX_QUEUE_SIZE = 256


class VirtqueueError(Exception):
    """The driver broke the virtqueue rules: the device stops using the queue."""


@dataclass(frozen=True, slots=True)
class Buffer:
    addr: int
    length: int
    device_writes: bool


@dataclass(slots=True)
class Chain:
    head: int
    buffers: list[Buffer]

    def readable(self) -> list[Buffer]:
        return [b for b in self.buffers if not b.device_writes]

    def writable(self) -> list[Buffer]:
        return [b for b in self.buffers if b.device_writes]


class Virtqueue:
    def __init__(self, index: int, max_size: int = MAX_QUEUE_SIZE) -> None:
        self.index = index
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        self.size = self.max_size
        self.ready = False
        self.desc = self.avail = self.used = 0
        self.last_avail = 0          # next available-ring slot the device will read
        self.used_idx = 0
        self.broken: str | None = None

    def _check(self, mem: "GuestMemory", addr: int, length: int) -> None:
        if length < 0 or addr < 0 or addr + length > mem.size:
            raise VirtqueueError(f"buffer {addr:#x}+{length} is outside guest RAM")

    def pop(self, mem: "GuestMemory") -> Chain | None:
        """The next descriptor chain the driver made available, or None."""
        if not self.ready or self.broken:
            return None
        avail_idx = mem.read_u16(self.avail + 2)
        if avail_idx == self.last_avail:
            return None
        if (avail_idx - self.last_avail) & 0xFFFF > self.size:
            raise VirtqueueError(f"queue {self.index}: available index jumped by more than the queue size")
        slot = self.last_avail % self.size
        head = mem.read_u16(self.avail + 4 + 2 * slot)
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return Chain(head, self._walk(mem, head))

    def _walk(self, mem: "GuestMemory", head: int) -> list[Buffer]:
        buffers: list[Buffer] = []
        index = head
        for _ in range(self.size):
            if index >= self.size:
                raise VirtqueueError(f"queue {self.index}: descriptor index {index} out of range")
            addr, length, flags, nxt = struct.unpack("<QIHH", mem.read(self.desc + 16 * index, 16))
            if flags & DESC_F_INDIRECT:
                raise VirtqueueError(f"queue {self.index}: indirect descriptors were not negotiated")
            self._check(mem, addr, length)
            buffers.append(Buffer(addr, length, bool(flags & DESC_F_WRITE)))
            if not flags & DESC_F_NEXT:
                return buffers
            index = nxt
        raise VirtqueueError(f"queue {self.index}: descriptor chain loops")

    def push(self, mem: "GuestMemory", head: int, written: int) -> None:
        """Return a chain to the driver: ``written`` bytes were put in its buffers."""
        slot = self.used_idx % self.size
        mem.write(self.used + 4 + 8 * slot, struct.pack("<II", head, written))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        mem.write_u16(self.used + 2, self.used_idx)

    def notifications_suppressed(self, mem: "GuestMemory") -> bool:
        """VIRTQ_AVAIL_F_NO_INTERRUPT: the driver polls and does not want interrupts."""
        return bool(mem.read_u16(self.avail) & 1)
