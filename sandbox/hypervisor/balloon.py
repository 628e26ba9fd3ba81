"""Ballooning: the guest gives pages back to the hypervisor, and takes them back later.

A balloon driver in the guest (guests/src/balloon/driver.c, used by tinyos and by the
``balloon`` demo guest) asks through the hypercall port how many pages the balloon should
hold. To inflate, it allocates pages from its own OS, so nothing in the guest uses them
any more, and hands their frame numbers to the hypervisor, which frees the host frames
behind them. To deflate, it asks for pages back and returns them to its OS; each gets a
fresh zero frame on first touch. The guest chooses *which* pages to give: that is why
ballooning beats hypervisor swapping, which has to guess.

Hypercalls (EAX = number; see sandbox/hypervisor/hypercalls.py):

    0x10 balloon_target   EAX <- pages the balloon should hold, EDX <- pages it holds
    0x11 balloon_inflate  EBX = guest-physical address of ECX u32 frame numbers; EAX <- taken
    0x12 balloon_deflate  the same, to take pages back; EAX <- returned
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.vm.memory import NOT_PRESENT

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_accounts import VmAccount
    from sandbox.hypervisor.memory_manager import MemoryManager
    from sandbox.vm.machine import VirtualMachine

MAX_BATCH = 1024        # frame numbers per hypercall


class Balloon:
    def __init__(self, mm: "MemoryManager") -> None:
        self.mm = mm
        self.inflated = 0
        self.deflated = 0

    def set_target(self, acct: "VmAccount | str", pages: int) -> None:
        """Ask the VM's balloon driver to hold ``pages`` pages (it polls the target)."""
        if isinstance(acct, str):
            acct = self.mm.accounts[acct]
        pages = max(0, min(pages, acct.memory.frames - acct.reservation_pages))
        if pages != acct.balloon_target:
            self.mm.emit("mem.balloon", acct.name, action="target", old=acct.balloon_target,
                         target=pages, size=len(acct.memory.ballooned))
            acct.balloon_target = pages

    def force(self, vm_name: str, pages: int | None) -> None:
        """A teacher's lever: keep the VM's balloon at least ``pages`` big whatever the
        host's state (None: let the hypervisor's policy decide again)."""
        acct = self.mm.accounts[vm_name]
        acct.balloon_forced = pages or 0
        if pages is not None and pages > acct.balloon_target:
            self.set_target(acct, pages)

    def inflate(self, acct: "VmAccount", gfns: list[int]) -> int:
        """The guest gives these pages: their host frames (or swap slots) are freed."""
        mem = acct.memory
        taken = 0
        for gfn in gfns:
            if not 0 <= gfn < mem.frames or gfn in mem.ballooned:
                continue
            if mem.table[gfn] != NOT_PRESENT and acct.resident <= acct.reservation_pages:
                continue            # never below the reservation, even if the guest offers
            hfn = self.mm.unmap(acct, gfn)
            slot = mem.swapped.pop(gfn, None)
            if slot is not None:
                self.mm.swap.file.free(slot)
            mem.ballooned.add(gfn)
            taken += 1
            self.mm.emit("mem.balloon", acct.name, action="inflate", gfn=gfn, hfn=hfn)
        self.inflated += taken
        self.mm.after()
        return taken

    def deflate(self, acct: "VmAccount", gfns: list[int]) -> int:
        """The guest takes these pages back: they are demand-allocated when touched."""
        mem = acct.memory
        returned = 0
        for gfn in gfns:
            if gfn in mem.ballooned:
                mem.ballooned.discard(gfn)
                returned += 1
                self.mm.emit("mem.balloon", acct.name, action="deflate", gfn=gfn, hfn=NOT_PRESENT)
        self.deflated += returned
        self.mm.after()
        return returned


# --- the hypercall handlers (registered in sandbox/hypervisor/hypercalls.py) -------------------
def _frame_numbers(vm: "VirtualMachine", regs: dict[str, int]) -> list[int]:
    count = min(regs["ecx"], MAX_BATCH)
    raw = vm.memory.read(regs["ebx"], 4 * count)
    return [int.from_bytes(raw[i:i + 4], "little") for i in range(0, len(raw), 4)]


def hypercall_target(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    acct = vm.hv.memory_manager.accounts[vm.name]
    return {"eax": acct.balloon_target, "edx": len(acct.memory.ballooned)}


def hypercall_inflate(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    mm = vm.hv.memory_manager
    return {"eax": mm.balloon.inflate(mm.accounts[vm.name], _frame_numbers(vm, regs))}


def hypercall_deflate(vm: "VirtualMachine", regs: dict[str, int]) -> dict[str, int]:
    mm = vm.hv.memory_manager
    return {"eax": mm.balloon.deflate(mm.accounts[vm.name], _frame_numbers(vm, regs))}
