"""Transparent page sharing: a scanner that merges identical pages into one read-only frame.

Modelled on Linux KSM (mm/ksm.c), in guest time: every ``scan_period`` the scanner visits
the next ``pages_to_scan`` resident pages, VM after VM, guest frame after guest frame.
For each private page:

1. If an identical page is already shared (the *stable* tree; here a dict from a hash
   of the content to the frame), map the page to that frame read-only, free its frame.
2. Otherwise, if its content changed since the scanner's last visit, it is *volatile*:
   skip it (merging a page that is about to be written only buys a copy-on-write fault).
3. Otherwise look for a twin among the pages seen unchanged during this pass (the
   *unstable* tree). Found: the twin's frame becomes a shared frame and both map it.
   Not found: remember this page there. The unstable tree is emptied after every full
   scan, since its pages may have changed in the meantime.

A hash only finds candidates; pages merge after a byte-by-byte comparison. Zero pages
skip the volatility test and merge at once (KSM's ``use_zero_pages``). In mode "vm" the
trees are salted with the VM's name, so only pages of the same VM merge: the defence
against the cross-VM side channel (one VM timing copy-on-write faults to learn what
another VM's memory holds) that made VMware turn inter-VM sharing off by default.
"""
from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from sandbox.host.ram import PAGE
from sandbox.hypervisor.memory_accounts import SHARED

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_accounts import VmAccount
    from sandbox.hypervisor.memory_manager import MemoryManager

ZERO_PAGE = bytes(PAGE)
ZERO = -1                   # the "hash" of the zero page (crc32 is never negative)
MAX_CATCH_UP = 50           # periods scanned at once after a long idle jump of guest time
MODES = {False: "off", True: "all", "vm": "vm", "off": "off", "all": "all"}


HASH = zlib.crc32           # the scanner's checksum (KSM uses xxhash): cheap, and only a hint


def content_hash(page) -> int:
    return ZERO if page == ZERO_PAGE else HASH(page)


class PageSharing:
    def __init__(self, mm: "MemoryManager", mode: bool | str, pages_to_scan: int, period_ns: int) -> None:
        self.mm = mm
        self.mode = MODES[mode]
        self.pages_to_scan = pages_to_scan
        self.period_ns = max(1, period_ns)
        self.next_scan_ns = self.period_ns
        self.stable: dict[tuple[str, int], int] = {}         # (salt, hash) -> shared frame
        self.stable_key: dict[int, tuple[str, int]] = {}     # shared frame -> its key
        self.unstable: dict[tuple[str, int], tuple["VmAccount", int, int]] = {}  # -> (vm, gfn, hfn)
        self.checksums: dict[str, list[int | None]] = {}     # vm -> hash at the last visit, per gfn
        self.volatile: dict[str, set[int]] = {}              # vm -> gfns that changed since last visit
        self.full_scans = 0
        self.merges = 0
        self._vm_index = 0
        self._gfn = 0

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    # --- the clock ---------------------------------------------------------------------------
    def tick(self, now_ns: int) -> None:
        if not self.enabled or now_ns < self.next_scan_ns:
            return
        periods = 1 + (now_ns - self.next_scan_ns) // self.period_ns
        self.next_scan_ns += periods * self.period_ns
        self.scan(min(periods, MAX_CATCH_UP) * self.pages_to_scan)

    # --- the scan ----------------------------------------------------------------------------
    def scan(self, budget: int) -> int:
        """Visit up to ``budget`` resident pages from where the last batch stopped. A
        batch ends with a full scan, so it never sees a page twice (a page must stay
        unchanged from one batch to a later one to count as not volatile)."""
        visited = 0
        accounts = self.mm.accounts
        while visited < budget and any(a.resident for a in accounts.values()):
            names = list(accounts)
            if self._vm_index >= len(names):
                self._end_full_scan()
                if visited:
                    break
                continue
            visited += self._scan_vm(accounts[names[self._vm_index]], budget - visited)
        return visited

    def _scan_vm(self, acct: "VmAccount", budget: int) -> int:
        """The scanner's inner loop, over one VM from the cursor on. Written for speed
        (locals, no calls on the common paths); the steps are those of the module
        docstring: stable tree, volatility, unstable tree."""
        mem = acct.memory
        table, writable, end = mem.table, mem.writable, mem.frames
        view, stable, unstable, crc = self.mm.pool.view, self.stable, self.unstable, HASH
        sums = self.checksums.get(acct.name)
        if sums is None:
            sums = self.checksums[acct.name] = [None] * end
            self.volatile[acct.name] = set()
        volatile = self.volatile[acct.name]
        salt = acct.name if self.mode == "vm" else ""
        visited = 0
        gfn = self._gfn
        for gfn in range(self._gfn, end):
            if visited >= budget:
                break
            hfn = table[gfn]
            if hfn < 0:
                continue
            visited += 1
            if not writable[gfn]:
                continue                                 # already shared
            page = view[hfn * PAGE:(hfn + 1) * PAGE]
            digest = ZERO if page == ZERO_PAGE else crc(page)
            key = (salt, digest)
            shared = stable.get(key)
            if shared is not None and view[shared * PAGE:(shared + 1) * PAGE] == page:
                self._merge(acct, gfn, hfn, shared)      # 1. an identical shared page exists
            elif digest == ZERO:
                if shared is None:                       # the first zero page: the zero frame
                    self._make_stable(acct, gfn, hfn, key)
            elif sums[gfn] != digest:                    # 2. changed since the last visit
                sums[gfn] = digest
                volatile.add(gfn)
            else:
                volatile.discard(gfn)
                twin = unstable.get(key)                 # 3. a twin seen during this pass?
                if twin is None or not self._still_there(twin, page):
                    unstable[key] = (acct, gfn, hfn)
                else:
                    del unstable[key]
                    self._make_stable(twin[0], twin[1], twin[2], key)
                    self._merge(acct, gfn, hfn, twin[2])
        else:
            gfn = end
        if gfn >= end:
            self._vm_index += 1
            gfn = 0
        self._gfn = gfn
        return visited

    def _end_full_scan(self) -> None:
        self._vm_index = self._gfn = 0
        self.unstable.clear()
        self.full_scans += 1
        if self.mm.wants("mem.scan"):
            self.mm.emit("mem.scan", None, **self.counters())

    def _still_there(self, twin: tuple["VmAccount", int, int], page) -> bool:
        acct, gfn, hfn = twin
        mem = acct.memory
        if acct.name not in self.mm.accounts or mem.table[gfn] != hfn or not mem.writable[gfn]:
            return False
        return self.mm.pool.view[hfn * PAGE:(hfn + 1) * PAGE] == page

    # --- merging -----------------------------------------------------------------------------
    def _make_stable(self, acct: "VmAccount", gfn: int, hfn: int, key: tuple[str, int]) -> None:
        """``hfn`` becomes a shared frame: read-only for its present owner too."""
        self.mm.pool.owner[hfn] = SHARED
        acct.memory.writable[gfn] = False
        self.mm.invalidate(acct)                # drop the writable translation
        self.stable[key] = hfn
        self.stable_key[hfn] = key

    def _merge(self, acct: "VmAccount", gfn: int, hfn: int, shared: int) -> None:
        mem = acct.memory
        mem.table[gfn] = shared
        mem.writable[gfn] = False
        self.mm.pool.refcount[shared] += 1
        self.mm.invalidate(acct)
        self.mm.release(hfn)
        self.merges += 1
        self.volatile.get(acct.name, set()).discard(gfn)
        self.mm.emit("mem.share", acct.name, gfn=gfn, hfn=shared, old_hfn=hfn,
                     zero=self.stable_key[shared][1] == ZERO)

    def forget(self, hfn: int) -> None:
        """``hfn`` is no longer a shared frame (freed, or its last sharer took it back)."""
        key = self.stable_key.pop(hfn, None)
        if key is not None and self.stable.get(key) == hfn:
            del self.stable[key]

    def forget_vm(self, vm_name: str) -> None:
        self.checksums.pop(vm_name, None)
        self.volatile.pop(vm_name, None)
        self.unstable = {k: v for k, v in self.unstable.items() if v[0].name != vm_name}

    # --- counters, with KSM's names -------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        refcount = self.mm.pool.refcount
        zero = sum(refcount[h] for h, key in self.stable_key.items() if key[1] == ZERO)
        return {
            "pages_shared": len(self.stable_key),                               # shared frames
            "pages_sharing": sum(refcount[h] - 1 for h in self.stable_key),     # frames saved
            "pages_unshared": len(self.unstable),
            "pages_volatile": sum(len(v) for v in self.volatile.values()),
            "full_scans": self.full_scans,
            "zero_pages_shared": zero,
        }
