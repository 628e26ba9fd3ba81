"""Physical RAM of the host: a pool of 4 KiB frames in one anonymous mapping.

Every VM's guest-physical memory is backed by frames from this pool (through the
VM's frame table, see ``sandbox.vm.memory``). Each frame is free, owned by one VM,
or shared read-only by several (``refcount`` > 1). Unicorn vCPUs map the whole pool
once (``mem_map_ptr``) and their TLB-fill hook points each guest page at a frame; the
KVM backend hands the same bytes to the kernel through memory slots.
"""
from __future__ import annotations

import ctypes
import mmap

PAGE = 4096
PAGE_SHIFT = 12


class OutOfFrames(Exception):
    """The host has no free frame left (the memory manager reclaims or fails)."""


class FramePool:
    def __init__(self, frames: int) -> None:
        if frames <= 0:
            raise ValueError("host RAM must have at least one frame")
        self.frames = frames
        self.buffer = mmap.mmap(-1, frames * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._anchor = ctypes.c_char.from_buffer(self.buffer)
        self.address = ctypes.addressof(self._anchor)       # host virtual address of frame 0
        self.view = memoryview(self.buffer)
        self.owner: list[str | None] = [None] * frames      # VM name, "<shared>" or None (free)
        self.refcount = [0] * frames
        # Lowest-numbered free frame first, so allocation is deterministic.
        self._free = list(range(frames - 1, -1, -1))

    @property
    def free_count(self) -> int:
        return len(self._free)

    def alloc(self, owner: str) -> int:
        if not self._free:
            raise OutOfFrames(f"host RAM exhausted ({self.frames} frames)")
        frame = self._free.pop()
        self.owner[frame] = owner
        self.refcount[frame] = 1
        return frame

    def release(self, frame: int) -> None:
        """Drop one reference; the frame is zeroed and freed with the last one."""
        self.refcount[frame] -= 1
        if self.refcount[frame] > 0:
            return
        if self.refcount[frame] < 0:
            raise AssertionError(f"frame {frame} released twice")
        self.owner[frame] = None
        self.view[frame * PAGE:(frame + 1) * PAGE] = bytes(PAGE)
        self._free.append(frame)

    def frame(self, frame: int) -> memoryview:
        return self.view[frame * PAGE:(frame + 1) * PAGE]

    def is_free(self, frame: int) -> bool:
        return self.refcount[frame] == 0

    def close(self) -> None:
        self.view.release()
        del self._anchor
        self.buffer.close()
