"""From a VM's frame table to KVM memory slots.

KVM does not read our frame table (gfn -> hfn). It wants *memory slots*: "guest-physical
range [gpa, gpa + size) is the host memory at userspace address uaddr", registered with
KVM_SET_USER_MEMORY_REGION. Our frames all live in one host mapping (the FramePool), so
a run of guest frames that maps to a run of *consecutive* host frames, all writable or
all read-only, is one slot. A fresh VM gets its frames in order and needs a handful of
slots; every shared (copy-on-write) page becomes a read-only slot of its own.

A slot cannot be resized or have its read-only flag changed in place, so an update is a
diff: delete the slots that are no longer exactly right, create the new ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sandbox.backends.kvm.errors import KvmError
from sandbox.vm.memory import NOT_PRESENT


@dataclass(frozen=True, slots=True)
class SlotRange:
    """``pages`` guest frames from ``gfn`` backed by host frames from ``hfn``."""
    gfn: int
    hfn: int
    pages: int
    readonly: bool

    @property
    def end_gfn(self) -> int:
        return self.gfn + self.pages


def layout(table: Sequence[int], writable: Sequence[bool], lo: int = 0,
           hi: int | None = None) -> list[SlotRange]:
    """The fewest slots that describe ``table[lo:hi]``: merge runs where both the guest and
    the host frame numbers go up by one and the access (read-write / read-only) is the
    same. Guest frames without a host frame get no slot (an access to them exits to us)."""
    out: list[SlotRange] = []
    gfn0 = hfn0 = pages = 0           # the run being grown (pages == 0: none)
    ro0 = False
    for gfn in range(lo, len(table) if hi is None else hi):
        hfn = table[gfn]
        readonly = not writable[gfn]
        if pages and hfn == hfn0 + pages and readonly == ro0 and hfn != NOT_PRESENT:
            pages += 1
            continue
        if pages:
            out.append(SlotRange(gfn0, hfn0, pages, ro0))
            pages = 0
        if hfn != NOT_PRESENT:
            gfn0, hfn0, pages, ro0 = gfn, hfn, 1, readonly
    if pages:
        out.append(SlotRange(gfn0, hfn0, pages, ro0))
    return out


class SlotTable:
    """Which slot id holds which range, and a free list of slot ids."""

    def __init__(self, max_slots: int) -> None:
        self.max_slots = max_slots
        self.by_range: dict[SlotRange, int] = {}
        self._free = list(range(max_slots - 1, -1, -1))     # lowest id first

    def overlapping(self, lo: int, hi: int) -> tuple[int, int, list[tuple[SlotRange, int]]]:
        """The slots touching guest frames [lo, hi), and the span they and [lo, hi) cover."""
        found = [(r, slot) for r, slot in self.by_range.items() if r.gfn < hi and r.end_gfn > lo]
        for r, _slot in found:
            lo, hi = min(lo, r.gfn), max(hi, r.end_gfn)
        return lo, hi, found

    def diff(self, old: list[tuple[SlotRange, int]], wanted: list[SlotRange]
             ) -> tuple[list[tuple[SlotRange, int]], list[SlotRange]]:
        """(old slots to delete, with their ids; ranges to create). A slot that is still
        exactly right stays as it is."""
        wanted_set = set(wanted)
        delete = [(r, slot) for r, slot in old if r not in wanted_set]
        create = [r for r in wanted if r not in self.by_range]
        return delete, create

    def release(self, r: SlotRange) -> int:
        slot = self.by_range.pop(r)
        self._free.append(slot)
        return slot

    def take(self, r: SlotRange) -> int:
        if not self._free:
            raise KvmError(f"KVM memory slots exhausted ({self.max_slots}): too many "
                                "shared pages split the guest's memory")
        slot = self._free.pop()
        self.by_range[r] = slot
        return slot

    def __len__(self) -> int:
        return len(self.by_range)
