"""What the memory manager knows about each VM: its guarantees and what it holds now.

ESXi's three memory controls, one set per VM:

* reservation: guest RAM the host guarantees. Admission control refuses a machine whose
  reservations do not fit in host RAM, no other VM may allocate into a reservation that
  is not used yet, and reclamation never takes a VM below it;
* limit: the most guest RAM the VM may have resident; past it, its own pages go to swap;
* shares: its claim when VMs compete. Reclamation takes a page from the VM with the
  fewest shares per resident page first (ESXi's proportional-share rule, without its
  idle-memory tax).
"""
from __future__ import annotations

import random
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from sandbox.errors import ConfigError

if TYPE_CHECKING:
    from sandbox.config.model import VmConfig
    from sandbox.vm.memory import GuestMemory

SHARED = "<shared>"     # FramePool.owner of a frame mapped read-only by several guest frames
PAGES_PER_MIB = 256
SHARES_PER_MIB = {"low": 5, "normal": 10, "high": 20}     # ESXi's 1:2:4 ratio
RECENT_PAGES = 8        # the last pages a VM faulted in are never its own eviction victims


@dataclass(frozen=True)
class VmPolicy:
    reservation_pages: int = 0
    limit_pages: int | None = None      # None: the VM's whole RAM
    shares: int = 0                     # 0: "normal" for the VM's size
    balloon: bool = False

    @classmethod
    def from_config(cls, cfg: "VmConfig") -> "VmPolicy":
        where = f"VM '{cfg.name}'"
        if cfg.mem_reservation_mib > cfg.memory_mib:
            raise ConfigError(f"{where}: mem_reservation_mib ({cfg.mem_reservation_mib}) is more than "
                              f"its memory_mib ({cfg.memory_mib})")
        limit = cfg.mem_limit_mib
        if limit is not None and limit < cfg.mem_reservation_mib:
            raise ConfigError(f"{where}: mem_limit_mib ({limit}) is below its mem_reservation_mib "
                              f"({cfg.mem_reservation_mib})")
        shares = cfg.mem_shares
        if isinstance(shares, str):
            shares = SHARES_PER_MIB[shares] * cfg.memory_mib
        return cls(cfg.mem_reservation_mib * PAGES_PER_MIB,
                   None if limit is None else limit * PAGES_PER_MIB, shares, cfg.balloon)


def policies_for(vms: Iterable["VmConfig"], host_frames: int) -> dict[str, VmPolicy]:
    """Each VM's policy, after admission control: the reservations must fit in host RAM."""
    policies = {cfg.name: VmPolicy.from_config(cfg) for cfg in vms}
    reserved = sum(p.reservation_pages for p in policies.values())
    if reserved > host_frames:
        raise ConfigError(f"the VMs reserve {reserved // PAGES_PER_MIB} MiB but the host has only "
                          f"{host_frames // PAGES_PER_MIB} MiB: admission control refuses to power on")
    return policies


@dataclass(eq=False)
class VmAccount:
    """One VM's memory, as the manager keeps it (all counts in 4 KiB pages)."""
    name: str
    memory: "GuestMemory"
    reservation_pages: int
    limit_pages: int
    shares: int
    balloon_enabled: bool
    resident: int = 0               # guest frames backed by a host frame (private or shared)
    balloon_target: int = 0         # pages the hypervisor wants the balloon driver to hold
    balloon_forced: int = 0         # a floor for the target set through the API (Balloon.force)
    cow_faults: int = 0
    swap_outs: int = 0
    swap_ins: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=RECENT_PAGES))
    rng: random.Random = field(default_factory=random.Random)

    @classmethod
    def open(cls, memory: "GuestMemory", policy: VmPolicy) -> "VmAccount":
        frames = memory.frames
        limit = frames if policy.limit_pages is None else min(policy.limit_pages, frames)
        shares = policy.shares or SHARES_PER_MIB["normal"] * max(1, frames // PAGES_PER_MIB)
        # Victims are picked at random, as ESXi does (it cannot know what the guest uses);
        # seeded by the VM's name so that two runs pick the same pages.
        rng = random.Random(zlib.crc32(memory.vm_name.encode()))
        return cls(memory.vm_name, memory, min(policy.reservation_pages, frames), limit, shares,
                   policy.balloon, rng=rng)

    @property
    def owed(self) -> int:
        """Reserved pages this VM does not use yet: nobody else may take them."""
        return max(0, self.reservation_pages - self.resident)

    def shares_per_page(self, taken: int = 0) -> float:
        return self.shares / max(1, self.resident - taken)

    def private_pages(self) -> list[int]:
        """Guest frames with a host frame of their own (the only ones swapping frees)."""
        mem = self.memory
        refcount = mem.pool.refcount
        recent = set(self.recent)
        return [gfn for gfn, hfn in enumerate(mem.table)
                if hfn >= 0 and mem.writable[gfn] and refcount[hfn] == 1 and gfn not in recent]
