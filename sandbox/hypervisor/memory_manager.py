"""The hypervisor's memory manager: gives guest frames host frames.

Demand allocation: a guest frame gets a host frame the first time the guest (or the
firmware, or a device doing DMA) touches it. A write to a frame that is mapped
read-only because it is shared gets a private copy first (copy-on-write). The memory
issue grows this file's siblings with page sharing, ballooning and swapping; the
isolation checker verifies the invariants of every frame table against the pool.
"""
from __future__ import annotations

from typing import Callable

from sandbox.host.ram import PAGE, FramePool, OutOfFrames
from sandbox.vm.memory import NOT_PRESENT, GuestMemory


class MemoryManager:
    def __init__(self, pool: FramePool, publish: Callable[..., object]) -> None:
        self.pool = pool
        self.publish = publish
        self.memories: dict[str, GuestMemory] = {}
        self.cow_faults: dict[str, int] = {}
        self.trace_allocations = True

    def create(self, vm_name: str, size_bytes: int, mmio=None) -> GuestMemory:
        mem = GuestMemory(vm_name, size_bytes, self.pool, self.fault, mmio)
        self.memories[vm_name] = mem
        self.cow_faults[vm_name] = 0
        return mem

    def destroy(self, vm_name: str) -> None:
        mem = self.memories.pop(vm_name, None)
        if mem is not None:
            mem.release_all()

    def fault(self, mem: GuestMemory, gfn: int, write: bool) -> int:
        """The guest touched ``gfn`` and the table cannot serve it: allocate or copy."""
        hfn = mem.table[gfn]
        if hfn == NOT_PRESENT:
            hfn = self.pool.alloc(mem.vm_name)
            mem.table[gfn] = hfn
            mem.writable[gfn] = True
            if self.trace_allocations:
                self.publish("mem.alloc", vm=mem.vm_name, gfn=gfn, hfn=hfn)
            return hfn
        if write and not mem.writable[gfn]:
            return self._copy_on_write(mem, gfn, hfn)
        return hfn

    def _copy_on_write(self, mem: GuestMemory, gfn: int, shared: int) -> int:
        if self.pool.refcount[shared] == 1:       # the last sharer: just take it back
            self.pool.owner[shared] = mem.vm_name
            mem.writable[gfn] = True
            return shared
        private = self.pool.alloc(mem.vm_name)
        self.pool.view[private * PAGE:(private + 1) * PAGE] = self.pool.frame(shared)
        self.pool.release(shared)
        mem.table[gfn] = private
        mem.writable[gfn] = True
        mem.generation += 1
        self.cow_faults[mem.vm_name] += 1
        self.publish("mem.cow", vm=mem.vm_name, gfn=gfn, old_hfn=shared, hfn=private)
        return private


__all__ = ["MemoryManager", "OutOfFrames"]
