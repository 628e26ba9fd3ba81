"""Reclamation when the host runs short of RAM, in ESXi's order.

ESXi keeps a threshold, minFree (6% of the first 4 GiB of host RAM, less per GiB above),
and puts the host in one of five states by how much memory is free compared with it.
Each state adds a costlier technique to the cheaper ones:

    page sharing (always) -> ballooning (soft) -> swapping (hard) -> blocking (low)

"Free" here is what is left for anyone: free frames minus the reservations that VMs
have not used yet. Shares decide who gives memory back: a page is taken from the VM
with the fewest shares per resident page, then the next, and so on. Reservations are
never reclaimed. (ESXi also compresses pages before swapping them; the sandbox does not.)

A VM that has powered off keeps its memory (so that it can still be inspected) until
the host leaves the high state: then its pages are the first to go, for free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_accounts import VmAccount
    from sandbox.hypervisor.memory_manager import MemoryManager

MIN_FREE_FRACTION = 0.06        # ESXi's MemMinFreePct for the first 4 GiB
BALLOON_MAX_FRACTION = 0.65     # ESXi's Mem.CtlMaxPercent: a balloon never holds more
DEFLATE_STEP = 64               # pages given back per tick once memory is plentiful again
DEFLATE_MARGIN = 2              # ... and only while more than 2 x minFree stays free
SWAP_STEP = 256                 # pages swapped per tick in the hard and low states
SYNC_SWAP_BATCH = 16            # pages swapped when an allocation finds no frame


@dataclass(frozen=True)
class MemoryState:
    name: str
    below: float        # the host is in this state when free < below x minFree
    action: str         # what the hypervisor does, one line for the teacher


STATES: tuple[MemoryState, ...] = (
    MemoryState("high", math.inf, "enough free memory: page sharing runs in the background, "
                "balloons deflate"),
    MemoryState("clear", 1.00, "free memory below minFree: page sharing goes on; balloons hold"),
    MemoryState("soft", 0.64, "balloon drivers are asked to inflate, VMs with the fewest shares "
                "per page first"),
    MemoryState("hard", 0.32, "the hypervisor swaps guest pages to its swap file"),
    MemoryState("low", 0.16, "every allocation waits while the hypervisor swaps"),
)


def min_free_frames(total_frames: int) -> int:
    return max(4, round(total_frames * MIN_FREE_FRACTION))


def classify(available: int, min_free: int) -> MemoryState:
    state = STATES[0]
    for candidate in STATES[1:]:
        if available < candidate.below * min_free:
            state = candidate
    return state


class Reclaimer:
    def __init__(self, mm: "MemoryManager") -> None:
        self.mm = mm
        self.min_free = min_free_frames(mm.pool.frames)
        self.state = STATES[0]
        self.transitions: list[tuple[str, str]] = []

    def available(self) -> int:
        return self.mm.pool.free_count - self.mm.owed()

    # --- between rounds ---------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        available = self.available()
        state = classify(available, self.min_free)
        if state is not self.state:
            self.transitions.append((self.state.name, state.name))
            self.mm.emit("mem.state", None, old=self.state.name, new=state.name, free=available,
                         min_free=self.min_free, action=state.action)
            self.state = state
        if state is not STATES[0]:
            available += self.free_finished(self.min_free * 4)
        ACTIONS[state.name](self, available)

    def free_finished(self, pages: int) -> int:
        """Drop up to ``pages`` pages of powered-off VMs; returns how many frames came free."""
        freed = 0
        for acct in list(self.mm.accounts.values()):
            if freed >= pages or not self.mm.finished(acct.name) or not acct.resident:
                continue
            mem = acct.memory
            for gfn, hfn in enumerate(mem.table):
                if freed >= pages:
                    break
                if hfn >= 0:
                    shared = self.mm.pool.refcount[hfn] > 1
                    self.mm.unmap(acct, gfn)
                    freed += not shared
                    self.mm.emit("mem.release", acct.name, gfn=gfn, hfn=hfn)
        return freed

    def _relax(self, available: int) -> None:
        """High: give balloon pages back while free memory stays above twice minFree
        (the margin keeps a balloon from deflating and inflating at every tick)."""
        self._steer_to_floor()
        spare = min(available - DEFLATE_MARGIN * self.min_free, DEFLATE_STEP)
        balloons = [a for a in self.mm.accounts.values() if a.balloon_target > self._floor(a)]
        while spare > 0 and balloons:        # the VM with the most shares per page first
            acct = max(balloons, key=lambda a: (a.shares_per_page(), a.name))
            step = min(spare, acct.balloon_target - self._floor(acct))
            self.mm.balloon.set_target(acct, acct.balloon_target - step)
            spare -= step
            balloons.remove(acct)

    def _hold(self, available: int) -> None:
        self._steer_to_floor()

    def _inflate(self, available: int) -> None:
        """Soft: ask balloons for what is missing to get back to "high"."""
        self._steer_to_floor()
        accounts = [a for a in self.mm.accounts.values() if a.balloon_enabled and not self.mm.finished(a.name)]
        pending = sum(max(0, a.balloon_target - len(a.memory.ballooned)) for a in accounts)
        want = self.min_free - available - pending
        plan = self.plan(want, accounts, lambda a: self._balloon_room(a))
        for acct, pages in plan.items():
            self.mm.balloon.set_target(acct, acct.balloon_target + pages)

    def _swap(self, available: int) -> None:
        """Hard and low: balloon, and swap what is missing to get back to "soft"."""
        self._inflate(available)
        leave_hard = math.ceil(STATES[3].below * self.min_free) + SYNC_SWAP_BATCH
        self.swap_by_shares(min(SWAP_STEP, leave_hard - available))

    # --- choosing victims ----------------------------------------------------------------------
    def plan(self, pages: int, accounts: list["VmAccount"],
             room: Callable[["VmAccount"], int]) -> dict["VmAccount", int]:
        """Take ``pages`` one at a time from the VM with the fewest shares per resident
        page, never more than ``room(vm)`` from one VM."""
        taken = {a: 0 for a in accounts}
        limit = {a: room(a) for a in accounts}
        for _ in range(max(0, pages)):
            able = [a for a in accounts if taken[a] < limit[a]]
            if not able:
                break
            victim = min(able, key=lambda a: (a.shares_per_page(taken[a]), a.name))
            taken[victim] += 1
        return {a: n for a, n in taken.items() if n}

    def swap_by_shares(self, pages: int) -> int:
        accounts = list(self.mm.accounts.values())
        candidates = {a: a.private_pages() for a in accounts}
        plan = self.plan(pages, accounts, lambda a: min(len(candidates[a]),
                                                        a.resident - a.reservation_pages))
        done = 0
        for acct, count in plan.items():
            for gfn in acct.rng.sample(candidates[acct], count):
                self.mm.swap.swap_out(acct, gfn)
                done += 1
        return done

    def make_room(self, acct: "VmAccount") -> bool:
        """An allocation found no frame to spare (the low state): swap synchronously."""
        return self.free_finished(SYNC_SWAP_BATCH) > 0 or self.swap_by_shares(SYNC_SWAP_BATCH) > 0

    # --- balloon bounds --------------------------------------------------------------------------
    def _floor(self, acct: "VmAccount") -> int:
        """The balloon a VM always gets: what its limit keeps it from using (ESXi does the
        same, which is why a limit below a VM's configured size makes its balloon inflate),
        or what the teacher forced (``Balloon.force``)."""
        by_limit = acct.memory.frames - acct.limit_pages if acct.balloon_enabled else 0
        return max(min(by_limit, self._balloon_max(acct)), acct.balloon_forced)

    def _balloon_max(self, acct: "VmAccount") -> int:
        return min(int(acct.memory.frames * BALLOON_MAX_FRACTION),
                   acct.memory.frames - acct.reservation_pages)

    def _balloon_room(self, acct: "VmAccount") -> int:
        by_size = self._balloon_max(acct) - acct.balloon_target
        by_reservation = acct.resident - acct.reservation_pages
        return max(0, min(by_size, by_reservation))

    def _steer_to_floor(self) -> None:
        for acct in self.mm.accounts.values():
            if acct.balloon_target < self._floor(acct):
                self.mm.balloon.set_target(acct, self._floor(acct))


ACTIONS: dict[str, Callable[[Reclaimer, int], None]] = {
    "high": Reclaimer._relax,
    "clear": Reclaimer._hold,
    "soft": Reclaimer._inflate,
    "hard": Reclaimer._swap,
    "low": Reclaimer._swap,
}
