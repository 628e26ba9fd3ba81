"""The hypervisor's memory manager: gives guest frames host frames, and takes them back.

Each guest frame (gfn) of each VM is in one of these states, and only this manager (with
its siblings) moves it from one to another:

    not present --first touch-----------------> private (writable, owned by the VM)
    private ----scanner finds an identical page-> shared (read-only, refcount > 1)
    shared -----guest writes-------------------> private again (copy-on-write)
    private ----reclamation--------------------> swapped (in the swap file) --touch--> private
    any --------balloon driver gives it---------> ballooned --deflate / touch--> not present

A host frame is free, owned by exactly one VM, or shared read-only by several. The
siblings: ``page_sharing.py`` (the KSM-like scanner), ``balloon.py``, ``swap.py``,
``reclaim.py`` (ESXi's host memory states and reclamation order), ``isolation.py``
(the invariant checker) and ``memory_accounts.py`` (reservation, limit, shares).

When a mapping is taken away, moved or made read-only, the VM's vCPUs must forget their
cached translations before the old frame is used again (a real hypervisor's TLB
shootdown / INVEPT): ``invalidate`` bumps the VM's generation, which every vCPU checks
before it runs, and while a vCPU may be running it flushes its TLB at once.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable

from sandbox.config.model import HostConfig
from sandbox.errors import SandboxError
from sandbox.host.ram import PAGE, FramePool, OutOfFrames
from sandbox.hypervisor.balloon import Balloon
from sandbox.hypervisor.memory_accounts import SHARED, VmAccount, VmPolicy, policies_for
from sandbox.hypervisor.page_sharing import PageSharing
from sandbox.hypervisor.reclaim import Reclaimer
from sandbox.hypervisor.swap import Swapper
from sandbox.vm.memory import NOT_PRESENT, GuestMemory

if TYPE_CHECKING:
    from sandbox.config.model import VmConfig


class HostMemoryError(SandboxError):
    """The host ran out of RAM and nothing could be reclaimed."""


class MemoryManager:
    def __init__(self, pool: FramePool, publish: Callable[..., object], host: HostConfig | None = None,
                 vms: Iterable["VmConfig"] = (), wants: Callable[[str], bool] | None = None,
                 shootdown: Callable[[str], None] | None = None,
                 finished: Callable[[str], bool] | None = None) -> None:
        host = host or HostConfig()
        self.pool = pool
        self.publish = publish
        self.wants = wants or (lambda kind: True)
        self._shootdown = shootdown          # flush the TLBs of a VM's vCPUs (the hypervisor)
        self.finished = finished or (lambda vm_name: False)   # powered off: its pages are free to take
        self.memories: dict[str, GuestMemory] = {}
        self.accounts: dict[str, VmAccount] = {}
        self.cow_faults: dict[str, int] = {}
        self.trace_allocations = True
        self.policies = policies_for(vms, pool.frames)
        self.sharing = PageSharing(self, host.page_sharing, host.pages_to_scan,
                                   int(host.scan_period_ms * 1_000_000))
        self.swap = Swapper(self, host.swap_file)
        self.balloon = Balloon(self)
        self.reclaim = Reclaimer(self)
        # Tests set this to the isolation checker: it then runs after every operation.
        self.after_operation: Callable[[], None] | None = None
        self._stale: set[str] | None = None      # between rounds: VMs to shoot down at the end

    # --- VMs ------------------------------------------------------------------------------
    def create(self, vm_name: str, size_bytes: int, mmio=None) -> GuestMemory:
        mem = GuestMemory(vm_name, size_bytes, self.pool, self.fault, mmio)
        self.memories[vm_name] = mem
        self.accounts[vm_name] = VmAccount.open(mem, self.policies.get(vm_name, VmPolicy()))
        self.cow_faults[vm_name] = 0
        return mem

    def destroy(self, vm_name: str) -> None:
        mem = self.memories.pop(vm_name, None)
        acct = self.accounts.pop(vm_name, None)
        if mem is None or acct is None:
            return
        for slot in mem.swapped.values():
            self.swap.file.free(slot)
        mem.swapped.clear()
        mem.ballooned.clear()
        for gfn, hfn in enumerate(mem.table):
            if hfn != NOT_PRESENT:
                mem.table[gfn] = NOT_PRESENT
                self.release(hfn)
        mem.generation += 1
        self.sharing.forget_vm(vm_name)

    def close(self) -> None:
        self.swap.close()

    # --- the fault path: the guest (or the firmware, or DMA) touched a guest frame ----------
    def fault(self, mem: GuestMemory, gfn: int, write: bool) -> int:
        """The frame table cannot serve this access: allocate, swap in, or copy."""
        acct = self.accounts[mem.vm_name]
        hfn = mem.table[gfn]
        if hfn == NOT_PRESENT:
            hfn = self._populate(acct, gfn)
        elif write and not mem.writable[gfn]:
            hfn = self._copy_on_write(acct, gfn, hfn)
        self.after()
        return hfn

    def _populate(self, acct: VmAccount, gfn: int) -> int:
        mem = acct.memory
        hfn = self.take_frame(acct, gfn, grows=True)
        slot = mem.swapped.pop(gfn, None)
        if slot is not None:
            self.swap.swap_in(acct, gfn, hfn, slot)
        elif gfn in mem.ballooned:          # the guest touched a page it had given away
            mem.ballooned.discard(gfn)
            self.emit("mem.balloon", acct.name, gfn=gfn, hfn=hfn, action="touched",
                      note="the guest used a page in its balloon: it gets a fresh zero page")
        elif self.trace_allocations:
            self.emit("mem.alloc", acct.name, gfn=gfn, hfn=hfn)
        self.map(acct, gfn, hfn, writable=True)
        return hfn

    def _copy_on_write(self, acct: VmAccount, gfn: int, shared: int) -> int:
        mem = acct.memory
        if self.pool.refcount[shared] == 1:       # the last sharer: just take it back
            self.pool.owner[shared] = acct.name
            self.sharing.forget(shared)
            mem.writable[gfn] = True
            self.emit("mem.cow", acct.name, gfn=gfn, old_hfn=shared, hfn=shared, copied=False)
            return shared
        private = self.take_frame(acct, gfn, grows=False)
        self.pool.view[private * PAGE:(private + 1) * PAGE] = self.pool.frame(shared)
        mem.table[gfn] = private
        mem.writable[gfn] = True
        self.release(shared)
        self.invalidate(acct)
        acct.cow_faults += 1
        self.cow_faults[acct.name] = acct.cow_faults
        self.emit("mem.cow", acct.name, gfn=gfn, old_hfn=shared, hfn=private, copied=True)
        return private

    def take_frame(self, acct: VmAccount, gfn: int, grows: bool) -> int:
        """A free host frame for ``acct``. ``grows``: the VM gets one more resident page,
        so its limit applies. Reclaims synchronously when the host has no frame to spare."""
        acct.recent.append(gfn)
        if grows:
            while acct.resident >= acct.limit_pages:
                if not self.swap.evict(acct, 1):
                    raise HostMemoryError(f"VM {acct.name} is at its memory limit and has no page to swap out")
        while not self._room_for(acct):
            if not self.reclaim.make_room(acct):
                raise HostMemoryError(f"host out of memory: VM {acct.name} needs a frame and nothing "
                                      "can be reclaimed (every page is reserved, shared or in use)")
        try:
            return self.pool.alloc(acct.name)
        except OutOfFrames as e:                  # _room_for said yes: a bug, not the user's
            raise AssertionError(str(e)) from None

    def _room_for(self, acct: VmAccount) -> bool:
        """May ``acct`` take a free frame without eating another VM's unused reservation?"""
        return self.pool.free_count > self.owed(exclude=acct)

    def owed(self, exclude: VmAccount | None = None) -> int:
        """Frames promised to reservations not used yet (VMs not powered on yet included,
        VMs that have powered off not)."""
        total = sum(a.owed for a in self.accounts.values() if a is not exclude and not self.finished(a.name))
        return total + sum(p.reservation_pages for name, p in self.policies.items()
                           if name not in self.accounts)

    # --- primitives the siblings use ------------------------------------------------------
    def map(self, acct: VmAccount, gfn: int, hfn: int, writable: bool) -> None:
        mem = acct.memory
        if mem.table[gfn] == NOT_PRESENT:
            acct.resident += 1
        mem.table[gfn] = hfn
        mem.writable[gfn] = writable

    def unmap(self, acct: VmAccount, gfn: int) -> int:
        """Take the host frame away from ``gfn`` (the caller says where the page went)."""
        mem = acct.memory
        hfn = mem.table[gfn]
        if hfn == NOT_PRESENT:
            return hfn
        mem.table[gfn] = NOT_PRESENT
        acct.resident -= 1
        self.invalidate(acct)
        self.release(hfn)
        return hfn

    def release(self, hfn: int) -> None:
        self.pool.release(hfn)
        if self.pool.is_free(hfn):
            self.sharing.forget(hfn)

    def invalidate(self, acct: VmAccount) -> None:
        """The VM's cached translations are stale: make its vCPUs drop them."""
        acct.memory.generation += 1
        if self._stale is not None:
            self._stale.add(acct.name)
        elif self._shootdown is not None:
            self._shootdown(acct.name)

    def emit(self, kind: str, vm: str | None, **data: Any) -> None:
        if self.wants(kind):
            self.publish(kind, vm=vm, **data)

    def after(self) -> None:
        if self.after_operation is not None:
            self.after_operation()

    # --- between scheduling rounds -----------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        """Called by the hypervisor between scheduling rounds, when no vCPU is running:
        the sharing scanner's batch, then reclamation by host memory state. The TLBs
        of the VMs whose mappings changed are shot down once, at the end."""
        self._stale = set()
        try:
            self.sharing.tick(now_ns)
            self.reclaim.tick(now_ns)
        finally:
            stale, self._stale = self._stale, None
            if self._shootdown is not None:
                for name in sorted(stale):
                    self._shootdown(name)
        self.after()

    # --- counters ----------------------------------------------------------------------------
    def swapped_pages(self) -> int:
        return sum(len(a.memory.swapped) for a in self.accounts.values())

    def ballooned_pages(self) -> int:
        return sum(len(a.memory.ballooned) for a in self.accounts.values())


__all__ = ["MemoryManager", "OutOfFrames", "HostMemoryError", "SHARED"]
