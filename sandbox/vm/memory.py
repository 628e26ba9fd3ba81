"""Guest-physical memory of one VM: a frame table from guest frames to host frames.

This is the structure a real hypervisor keeps in its EPT/NPT: guest frame number
(gfn) -> host frame number (hfn). A gfn has no host frame until the guest first
touches it (demand allocation, done by the hypervisor's memory manager). An entry
can be read-only even though the guest may write it: the frame is shared with other
pages and a write must first get a private copy (copy-on-write).

Guest-physical addresses at or above the VM's RAM size are not RAM: they belong to
a device on the MMIO bus, or to nobody (open bus: reads all ones, writes dropped,
reported once as an isolation event).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sandbox.host.ram import PAGE, PAGE_SHIFT, FramePool

if TYPE_CHECKING:
    from sandbox.hypervisor.bus import Bus

NOT_PRESENT = -1

# The PC memory map below 1 MiB. All of it is backed by frames (the VGA text window
# and the BIOS ROM included): the firmware writes its ROM image into it at power-on.
CONVENTIONAL_END = 0x9FC00      # usable low RAM ends where the EBDA starts
VGA_TEXT = 0xB8000
BIOS_ROM = 0xF0000
HIGH_MEMORY = 0x100000
HIGH_BIOS_ALIAS = 0xFFFE0000    # 0xFFFE0000-0xFFFFFFFF reads as 0xE0000-0xFFFFF (the reset vector)


class GuestMemory:
    def __init__(self, vm_name: str, size_bytes: int, pool: FramePool,
                 on_fault: Callable[["GuestMemory", int, bool], int],
                 mmio: "Bus | None" = None) -> None:
        self.vm_name = vm_name
        self.size = max(size_bytes, HIGH_MEMORY)
        self.pool = pool
        self.frames = self.size >> PAGE_SHIFT
        self.table: list[int] = [NOT_PRESENT] * self.frames          # gfn -> hfn
        self.writable: list[bool] = [False] * self.frames            # False: shared, CoW on write
        # Guest frames without a host frame for a reason (table entry NOT_PRESENT):
        self.swapped: dict[int, int] = {}       # gfn -> slot in the host swap file
        self.ballooned: set[int] = set()        # given to the hypervisor by the balloon driver
        self._on_fault = on_fault       # the memory manager: (memory, gfn, write) -> hfn
        self.mmio = mmio
        self.a20 = True                 # fast A20 gate (port 0x92); when off, bit 20 wraps
        self.generation = 0             # bumped whenever a mapping changes (vCPUs flush TLBs)

    # --- translation, as the vCPU's TLB fill does it --------------------------------
    def is_ram(self, gpa: int) -> bool:
        return 0 <= gpa < self.size

    def frame_for(self, gfn: int, write: bool) -> int:
        """Host frame backing ``gfn`` for this access, faulting it in if needed.
        Returns NOT_PRESENT when the gfn is not RAM."""
        if not 0 <= gfn < self.frames:
            return NOT_PRESENT
        hfn = self.table[gfn]
        if hfn == NOT_PRESENT or (write and not self.writable[gfn]):
            hfn = self._on_fault(self, gfn, write)
        return hfn

    def mask(self, gpa: int) -> int:
        if gpa >= HIGH_BIOS_ALIAS:              # the top 128 KiB alias the BIOS ROM, as on a PC
            return gpa - 0xFFF00000
        return gpa if self.a20 else gpa & ~(1 << 20)

    # --- host-side access (firmware, DMA, inspectors) ----------------------------------
    def read(self, gpa: int, length: int) -> bytes:
        out = bytearray()
        while length > 0:
            gpa = self.mask(gpa)
            off = gpa & (PAGE - 1)
            n = min(length, PAGE - off)
            hfn = self.frame_for(gpa >> PAGE_SHIFT, False) if self.is_ram(gpa) else NOT_PRESENT
            if hfn == NOT_PRESENT:
                out += self._mmio_read(gpa, n)
            else:
                base = hfn * PAGE + off
                out += self.pool.view[base:base + n]
            gpa += n
            length -= n
        return bytes(out)

    def write(self, gpa: int, data: bytes | bytearray | memoryview) -> None:
        data = memoryview(bytes(data))
        pos = 0
        while pos < len(data):
            gpa = self.mask(gpa)
            off = gpa & (PAGE - 1)
            n = min(len(data) - pos, PAGE - off)
            hfn = self.frame_for(gpa >> PAGE_SHIFT, True) if self.is_ram(gpa) else NOT_PRESENT
            if hfn == NOT_PRESENT:
                self._mmio_write(gpa, data[pos:pos + n])
            else:
                base = hfn * PAGE + off
                self.pool.view[base:base + n] = data[pos:pos + n]
            gpa += n
            pos += n

    def read_u16(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 2), "little")

    def read_u32(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 4), "little")

    def write_u16(self, gpa: int, value: int) -> None:
        self.write(gpa, (value & 0xFFFF).to_bytes(2, "little"))

    def write_u32(self, gpa: int, value: int) -> None:
        self.write(gpa, (value & 0xFFFFFFFF).to_bytes(4, "little"))

    def _mmio_read(self, gpa: int, n: int) -> bytes:
        if self.mmio is None:
            return b"\xff" * n
        return bytes(self.mmio.read(gpa + i, 1) for i in range(n))

    def _mmio_write(self, gpa: int, data: memoryview) -> None:
        if self.mmio is not None:
            for i, b in enumerate(data):
                self.mmio.write(gpa + i, 1, b)

    # --- accounting -----------------------------------------------------------------------
    def resident_pages(self) -> int:
        return sum(1 for h in self.table if h != NOT_PRESENT)

    def release_all(self) -> None:
        for gfn, hfn in enumerate(self.table):
            if hfn != NOT_PRESENT:
                self.pool.release(hfn)
                self.table[gfn] = NOT_PRESENT
        self.generation += 1
