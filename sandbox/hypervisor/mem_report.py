"""The memory sections of the run report (``--report``), also used by memcheck and the GUI."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_manager import MemoryManager


def host_memory(mm: "MemoryManager") -> dict[str, Any]:
    """Host RAM and the sharing scanner's counters (with KSM's names), the swap file, the
    balloons and the host memory state (with ESXi's names)."""
    pool = mm.pool
    return {
        "frames_total": pool.frames,
        "frames_free": pool.free_count,
        **mm.sharing.counters(),
        "swapped_pages": mm.swapped_pages(),
        "ballooned_pages": mm.ballooned_pages(),
        "state": mm.reclaim.state.name,
        "min_free_frames": mm.reclaim.min_free,
        "page_sharing": mm.sharing.mode,
        "swap_file_slots_used": mm.swap.file.used,
    }


def vm_memory(mm: "MemoryManager", vm_name: str) -> dict[str, Any]:
    acct = mm.accounts.get(vm_name)
    if acct is None:                  # not powered on
        return {"resident_pages": 0, "shared_pages": 0, "swapped_pages": 0, "ballooned_pages": 0,
                "cow_faults": 0, "reservation_pages": 0, "limit_pages": 0}
    mem = acct.memory
    shared = sum(1 for gfn, hfn in enumerate(mem.table) if hfn >= 0 and not mem.writable[gfn])
    return {
        "resident_pages": acct.resident,
        "shared_pages": shared,
        "swapped_pages": len(mem.swapped),
        "ballooned_pages": len(mem.ballooned),
        "balloon_target": acct.balloon_target,
        "cow_faults": acct.cow_faults,
        "swap_ins": acct.swap_ins,
        "swap_outs": acct.swap_outs,
        "reservation_pages": acct.reservation_pages,
        "limit_pages": acct.limit_pages,
        "shares": acct.shares,
    }
