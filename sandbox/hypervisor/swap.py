"""Hypervisor swapping: the last resort of reclamation, and how limits are enforced.

The hypervisor copies a guest page to a slot of the host swap file, frees the host frame
and marks the guest frame "swapped". The guest is not told: its next touch of the page
faults into the hypervisor, which reads it back into a fresh frame (demand paging, one
level below the guest's own). Unlike the balloon, the hypervisor cannot know which pages
the guest still needs, so it picks them at random (as ESXi does); a guest that touches
them again pays a disk read each time.

Only private pages are swapped: swapping one mapping of a shared frame frees nothing.
"""
from __future__ import annotations

import heapq
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox.errors import ConfigError
from sandbox.host.ram import PAGE

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_accounts import VmAccount
    from sandbox.hypervisor.memory_manager import MemoryManager


class SwapFile:
    """Page-sized slots in one host file; the lowest free slot is used first. The file is
    created at the first swap-out (named, or an unnamed temporary file) and emptied when
    the hypervisor closes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None
        self._free: list[int] = []          # a heap of released slots
        self._next = 0                      # slots below this exist in the file
        self.used = 0

    def _open(self) -> int:
        if self._fd is None:
            if self.path is None:
                self._fd = os.dup((tmp := tempfile.TemporaryFile(prefix="sandbox-swap-")).fileno())
                tmp.close()
            else:
                try:
                    self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                except OSError as e:
                    raise ConfigError(f"swap_file '{self.path}': cannot open ({e.strerror})") from None
        return self._fd

    def store(self, data: bytes | memoryview) -> int:
        fd = self._open()
        slot = heapq.heappop(self._free) if self._free else self._take_new()
        os.pwrite(fd, data, slot * PAGE)
        self.used += 1
        return slot

    def _take_new(self) -> int:
        self._next += 1
        return self._next - 1

    def load(self, slot: int) -> bytes:
        data = os.pread(self._open(), PAGE, slot * PAGE)
        return data.ljust(PAGE, b"\0")

    def free(self, slot: int) -> None:
        heapq.heappush(self._free, slot)
        self.used -= 1

    def close(self) -> None:
        if self._fd is not None:
            if self.path is not None:
                os.ftruncate(self._fd, 0)       # the contents mean nothing after power-off
            os.close(self._fd)
            self._fd = None


class Swapper:
    def __init__(self, mm: "MemoryManager", path: Path | None) -> None:
        self.mm = mm
        self.file = SwapFile(path)
        self.swapped_out = 0
        self.swapped_in = 0

    def swap_out(self, acct: "VmAccount", gfn: int) -> None:
        mem = acct.memory
        hfn = mem.table[gfn]
        slot = self.file.store(self.mm.pool.frame(hfn))
        mem.swapped[gfn] = slot
        self.mm.unmap(acct, gfn)
        acct.swap_outs += 1
        self.swapped_out += 1
        self.mm.emit("mem.swap_out", acct.name, gfn=gfn, hfn=hfn, slot=slot)

    def swap_in(self, acct: "VmAccount", gfn: int, hfn: int, slot: int) -> None:
        """Fill the fresh frame ``hfn`` from ``slot`` (the caller maps it)."""
        self.mm.pool.view[hfn * PAGE:(hfn + 1) * PAGE] = self.file.load(slot)
        self.file.free(slot)
        acct.swap_ins += 1
        self.swapped_in += 1
        self.mm.emit("mem.swap_in", acct.name, gfn=gfn, hfn=hfn, slot=slot)

    def evict(self, acct: "VmAccount", count: int) -> int:
        """Swap out up to ``count`` random private pages of ``acct``; returns how many."""
        candidates = acct.private_pages()
        chosen = acct.rng.sample(candidates, min(count, len(candidates)))
        for gfn in chosen:
            self.swap_out(acct, gfn)
        return len(chosen)

    def close(self) -> None:
        self.file.close()
