"""The isolation checker: the invariants that keep one VM's memory away from another's.

Sharing, ballooning and swapping move host frames between VMs all the time; one slip
and a VM reads (or writes!) another VM's page. ``check`` compares every VM's frame table
with the host frame pool and the sharing scanner's books, and returns what is wrong.
Tests run it after every memory operation; ``sandbox memcheck`` runs it on a scenario;
``Machine.memcheck()`` runs it through the API.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.errors import SandboxError
from sandbox.host.ram import PAGE
from sandbox.hypervisor.memory_accounts import SHARED
from sandbox.hypervisor.page_sharing import content_hash

if TYPE_CHECKING:
    from sandbox.hypervisor.memory_manager import MemoryManager

# Each rule, with the sentence a teacher reads aloud.
RULES: dict[str, str] = {
    "writable_twice": "No host frame is writable in two places (two VMs, or two guest frames).",
    "free_and_mapped": "No host frame is both free and mapped by a guest.",
    "refcount": "A host frame's reference count is the number of guest frames mapping it.",
    "shared_writable": "A host frame mapped more than once is read-only everywhere.",
    "shared_content": "A shared frame still holds exactly the content it was merged for.",
    "own_frames": "A VM reaches only its own frames or shared frames, through its own table.",
    "leak": "Every allocated host frame is mapped by some guest frame.",
    "free_zeroed": "Free host frames hold zeros: no data passes from one VM to the next.",
    "not_present": "A swapped or ballooned guest frame has no host frame; a swap slot has one owner.",
    "limit": "No VM has more pages resident than its limit.",
    "accounting": "The manager's resident count of each VM matches its frame table.",
}

ZERO_PAGE = bytes(PAGE)


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.message}"


class IsolationError(SandboxError):
    """The isolation checker found a broken invariant."""


def check(mm: "MemoryManager", content: bool = True) -> list[Violation]:
    """Every invariant of ``RULES``; ``content=False`` skips the byte comparisons."""
    pool = mm.pool
    out: list[Violation] = []
    bad = lambda rule, msg: out.append(Violation(rule, msg))      # noqa: E731
    mappers: dict[int, list[tuple[str, int, bool]]] = {}           # hfn -> (vm, gfn, writable)
    slots: dict[int, tuple[str, int]] = {}
    for name, acct in mm.accounts.items():
        mem = acct.memory
        resident = 0
        for gfn, hfn in enumerate(mem.table):
            if hfn < 0:
                continue
            resident += 1
            writable = mem.writable[gfn]
            mappers.setdefault(hfn, []).append((name, gfn, writable))
            owner = pool.owner[hfn]
            if owner != SHARED and owner != name:
                bad("own_frames", f"VM {name} gfn {gfn:#x} maps host frame {hfn} owned by {owner!r}")
            if writable and owner == SHARED:
                bad("shared_writable", f"VM {name} gfn {gfn:#x} maps shared frame {hfn} writable")
            if gfn in mem.swapped or gfn in mem.ballooned:
                bad("not_present", f"VM {name} gfn {gfn:#x} is swapped or ballooned but maps frame {hfn}")
        for gfn, slot in mem.swapped.items():
            if slot in slots:
                bad("not_present", f"swap slot {slot} holds VM {name} gfn {gfn:#x} and {slots[slot]}")
            slots[slot] = (name, gfn)
        if resident != acct.resident:
            bad("accounting", f"VM {name}: {resident} pages mapped, the manager counts {acct.resident}")
        if resident > acct.limit_pages:
            bad("limit", f"VM {name} has {resident} pages resident, its limit is {acct.limit_pages}")
    for hfn in range(pool.frames):
        maps = mappers.get(hfn, [])
        if pool.is_free(hfn):
            if maps:
                bad("free_and_mapped", f"free host frame {hfn} is mapped by {_who(maps)}")
            if pool.owner[hfn] is not None:
                bad("free_and_mapped", f"free host frame {hfn} still has owner {pool.owner[hfn]!r}")
            if content and pool.frame(hfn) != ZERO_PAGE:
                bad("free_zeroed", f"free host frame {hfn} is not zeroed")
            continue
        if not maps:
            bad("leak", f"host frame {hfn} (owner {pool.owner[hfn]!r}) is allocated but not mapped")
            continue
        if pool.refcount[hfn] != len(maps):
            bad("refcount", f"host frame {hfn} has refcount {pool.refcount[hfn]} but {len(maps)} mappings")
        writers = [m for m in maps if m[2]]
        if writers and len(maps) > 1:
            rule = "writable_twice" if len(writers) > 1 or len({m[0] for m in maps}) > 1 else "shared_writable"
            bad(rule, f"host frame {hfn} is writable by {_who(writers)} and mapped by {_who(maps)}")
        if len(maps) > 1 and pool.owner[hfn] != SHARED:
            bad("shared_writable", f"host frame {hfn} is mapped {len(maps)} times but owned by "
                f"{pool.owner[hfn]!r}, not shared")
    if content:
        for hfn, (_salt, digest) in mm.sharing.stable_key.items():
            if not pool.is_free(hfn) and content_hash(pool.frame(hfn)) != digest:
                bad("shared_content", f"shared host frame {hfn} changed since it was merged")
    if mm.swap.file.used != len(slots):
        bad("not_present", f"the swap file has {mm.swap.file.used} slots in use, the VMs {len(slots)}")
    return out


def check_and_publish(mm: "MemoryManager", content: bool = True) -> list[Violation]:
    """``check``, and a ``mem.violation`` event for each broken invariant (for the GUI)."""
    problems = check(mm, content)
    for p in problems:
        mm.emit("mem.violation", None, rule=p.rule, message=p.message, rule_text=RULES[p.rule])
    return problems


def _who(maps: list[tuple[str, int, bool]]) -> str:
    return ", ".join(f"{vm}:{gfn:#x}" for vm, gfn, _w in maps[:4]) + (" ..." if len(maps) > 4 else "")


def assert_isolated(mm: "MemoryManager", content: bool = True) -> None:
    """Raise ``IsolationError`` naming the first broken invariant (for tests and memcheck)."""
    problems = check(mm, content)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IsolationError(f"isolation broken: {problems[0]}{more}")
