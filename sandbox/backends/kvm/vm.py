"""One KVM virtual machine: the VM file descriptor and its guest-physical memory.

All vCPUs of a VM share one ``KvmVm`` (``KvmVm.attach(memory)``): KVM keeps memory
slots per VM, not per vCPU. Guest RAM is the VM's ``GuestMemory``; its frames live in
the host's FramePool, one anonymous mapping, so a memory slot simply points KVM at
``pool.address + hfn * 4096``. The guest and the Python hypervisor then see the very
same bytes: no copying, in either direction.

KVM must find every RAM page in a slot *before* the guest touches it: an instruction
fetch from a guest-physical address without a slot cannot be served as MMIO. So, unlike
the Unicorn backend (which allocates a frame when the guest first touches it), the KVM
backend faults in all of the VM's RAM when the VM is created.
"""
from __future__ import annotations

import ctypes
import mmap
import os
import threading
import weakref
from typing import TYPE_CHECKING

from sandbox.backends.kvm import abi
from sandbox.backends.kvm.errors import KvmError
from sandbox.backends.kvm.memslots import SlotRange, SlotTable, layout
from sandbox.backends.kvm.probe import probe
from sandbox.errors import BackendUnavailable
from sandbox.host.ram import PAGE, PAGE_SHIFT

if TYPE_CHECKING:
    from sandbox.vm.memory import GuestMemory

# Intel CPUs without "unrestricted guest" run real mode as vm86 inside the guest, which
# needs a TSS (3 pages) and an identity-mapped page table (1 page) somewhere in guest-
# physical space that is not RAM. KVM's convention: just below the 4 GiB BIOS flash.
IDENTITY_MAP_ADDR = 0xFFFBC000
TSS_ADDR = 0xFFFBD000


class KvmVm:
    _by_memory: "weakref.WeakKeyDictionary[GuestMemory, KvmVm]" = weakref.WeakKeyDictionary()
    _registry_lock = threading.Lock()

    @classmethod
    def attach(cls, memory: "GuestMemory") -> "KvmVm":
        """The KvmVm of this guest memory, created by its first vCPU."""
        with cls._registry_lock:
            vm = cls._by_memory.get(memory)
            if vm is None or vm.closed:
                vm = cls._by_memory[memory] = cls(memory)
            vm.users += 1
            return vm

    def __init__(self, memory: "GuestMemory") -> None:
        found = probe()
        if not found.usable:
            raise BackendUnavailable(f"KVM backend unavailable: {found.problem()}")
        if memory.size > IDENTITY_MAP_ADDR:
            raise KvmError(f"guest RAM of {memory.size >> 20} MiB reaches KVM's real-mode "
                           f"TSS at {TSS_ADDR:#x}; give the VM less than 4 GiB")
        self.memory = memory
        self.paravirtual = found.paravirtual
        self.users = 0
        self.closed = False
        self.system_fd = os.open(found.device, os.O_RDWR | os.O_CLOEXEC)
        self.fd = abi.ioctl(self.system_fd, abi.KVM_CREATE_VM, 0)
        self.vcpu_mmap_size = abi.ioctl(self.system_fd, abi.KVM_GET_VCPU_MMAP_SIZE)
        if found.capabilities.get("KVM_CAP_SET_TSS_ADDR"):
            abi.ioctl(self.fd, abi.KVM_SET_TSS_ADDR, TSS_ADDR)
        if found.capabilities.get("KVM_CAP_SET_IDENTITY_MAP_ADDR"):
            abi.ioctl(self.fd, abi.KVM_SET_IDENTITY_MAP_ADDR, ctypes.c_uint64(IDENTITY_MAP_ADDR))
        self.exit_on_emulation_failure = False
        if self.paravirtual and found.capabilities.get("KVM_CAP_EXIT_ON_EMULATION_FAILURE"):
            # The emulation fallback (emulate.py) must see *every* failure: by default
            # KVM turns one in ring 3 (a system call's ``int 0x80``) into a #UD for the guest.
            cap = abi.kvm_enable_cap(cap=abi.KVM_CAP_EXIT_ON_EMULATION_FAILURE)
            cap.args[0] = 1
            abi.ioctl(self.fd, abi.KVM_ENABLE_CAP, cap)
            self.exit_on_emulation_failure = True
        self.slots = SlotTable(found.capabilities["KVM_CAP_NR_MEMSLOTS"])
        self.capabilities = found.capabilities
        self._lock = threading.RLock()
        self.synced_generation = -1
        self.dirty_logging = False
        self._dirty: set[int] = set()       # written outside KVM's log (by us, or in deleted slots)
        self.slot_updates = 0               # KVM_SET_USER_MEMORY_REGION calls, for the curious
        for gfn in range(memory.frames):    # every RAM page gets its frame now (see above)
            memory.frame_for(gfn, False)
        self.sync()

    # --- vCPUs ---------------------------------------------------------------------------
    def create_vcpu(self, index: int) -> tuple[int, mmap.mmap]:
        """KVM_CREATE_VCPU, and the vCPU's shared ``struct kvm_run`` page mapped in."""
        fd = abi.ioctl(self.fd, abi.KVM_CREATE_VCPU, index)
        page = mmap.mmap(fd, self.vcpu_mmap_size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        return fd, page

    # --- memory slots --------------------------------------------------------------------
    def sync(self, lo: int = 0, hi: int | None = None) -> int:
        """Make the slots covering guest frames [lo, hi) match the frame table again.
        Returns how many slots changed. Slots that are still right are left alone, so
        a running vCPU elsewhere keeps going; one that touches a page in the middle of
        the update exits with MMIO on RAM, which ``ram_access`` serves."""
        memory = self.memory
        hi = memory.frames if hi is None else hi
        with self._lock:
            generation = memory.generation
            lo, hi, old = self.slots.overlapping(lo, hi)
            delete, create = self.slots.diff(old, layout(memory.table, memory.writable, lo, hi))
            for r, slot in delete:
                if self.dirty_logging:
                    self._dirty.update(self._read_log(r, slot))
                self._set_slot(slot, None)
                self.slots.release(r)
            for r in create:
                self._set_slot(self.slots.take(r), r)
            if (lo, hi) == (0, memory.frames):
                self.synced_generation = generation
            return len(delete) + len(create)

    def sync_if_stale(self) -> None:
        if self.synced_generation != self.memory.generation:
            self.sync()

    def ram_access(self, gpa: int, data: bytes | None, length: int) -> bytes:
        """Serve a guest access that exited as MMIO although ``gpa`` is RAM: a write to a
        read-only (shared) page, or a page whose slot was being replaced. A write gets
        its private copy through the memory manager (``frame_for(gfn, True)``), the data
        lands in it, and the slot is updated so the next write goes straight to RAM."""
        memory = self.memory
        gfn = gpa >> PAGE_SHIFT
        before = memory.generation
        in_sync = self.synced_generation == before
        if data is None:
            result = memory.read(gpa, length)
        else:
            memory.write(gpa, data)             # copy-on-write happens here
            result = b""
            if self.dirty_logging:
                self._dirty.update(range(gfn, ((gpa + len(data) - 1) >> PAGE_SHIFT) + 1))
        last = (gpa + max(length, 1) - 1) >> PAGE_SHIFT
        self.sync(gfn, last + 1)
        if in_sync:
            # The fault changed these pages only, and they are synced now.
            self.synced_generation = memory.generation
        return result

    def _set_slot(self, slot: int, r: SlotRange | None) -> None:
        region = abi.kvm_userspace_memory_region(slot=slot)
        if r is not None:        # memory_size 0 deletes the slot
            region.flags = (abi.KVM_MEM_READONLY if r.readonly else 0) | \
                (abi.KVM_MEM_LOG_DIRTY_PAGES if self.dirty_logging else 0)
            region.guest_phys_addr = r.gfn << PAGE_SHIFT
            region.memory_size = r.pages * PAGE
            region.userspace_addr = self.memory.pool.address + r.hfn * PAGE
        abi.ioctl(self.fd, abi.KVM_SET_USER_MEMORY_REGION, region)
        self.slot_updates += 1

    # --- dirty page tracking (for live migration) ----------------------------------------
    def get_dirty_log(self) -> list[int]:
        """Guest frames written since the previous call, sorted. The first call turns
        logging on and returns every frame: nothing has been copied yet."""
        with self._lock:
            if not self.dirty_logging:
                self._set_logging(True)
                return [gfn for gfn, hfn in enumerate(self.memory.table) if hfn >= 0]
            dirty, self._dirty = self._dirty, set()
            for r, slot in list(self.slots.by_range.items()):
                dirty.update(self._read_log(r, slot))
            return sorted(dirty)

    def stop_dirty_log(self) -> None:
        with self._lock:
            if self.dirty_logging:
                self._set_logging(False)
                self._dirty.clear()

    def _set_logging(self, on: bool) -> None:
        self.dirty_logging = on
        for r, slot in self.slots.by_range.items():   # a flags-only change is allowed in place
            self._set_slot(slot, r)

    def _read_log(self, r: SlotRange, slot: int) -> list[int]:
        """KVM_GET_DIRTY_LOG for one slot: a bitmap, bit i = guest frame r.gfn + i."""
        bitmap = (ctypes.c_uint64 * ((r.pages + 63) // 64))()
        abi.ioctl(self.fd, abi.KVM_GET_DIRTY_LOG,
                  abi.kvm_dirty_log(slot=slot, dirty_bitmap=ctypes.addressof(bitmap)))
        out = []
        for word_index, word in enumerate(bitmap):
            while word:
                low = word & -word
                out.append(r.gfn + word_index * 64 + low.bit_length() - 1)
                word ^= low
        return out

    # --- life cycle ------------------------------------------------------------------------
    def release(self) -> None:
        """A vCPU is done with the VM; the last one closes it."""
        with self._registry_lock:
            self.users -= 1
            if self.users <= 0 and not self.closed:
                self.closed = True
                os.close(self.fd)
                os.close(self.system_fd)
