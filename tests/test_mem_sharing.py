"""Demand allocation, transparent page sharing and copy-on-write, driven through the
memory manager directly (no guest code): the isolation checker runs after every
operation."""
from __future__ import annotations

import pytest

from sandbox.config.model import HostConfig
from sandbox.host.ram import PAGE, FramePool
from sandbox.hypervisor import page_sharing
from sandbox.hypervisor.isolation import assert_isolated
from sandbox.hypervisor.memory_accounts import SHARED
from sandbox.hypervisor.memory_manager import MemoryManager
from sandbox.vm.memory import NOT_PRESENT


def manager(frames: int = 1024, sharing: bool | str = True, **host):
    events: list[tuple[str, str | None, dict]] = []
    mm = MemoryManager(FramePool(frames), lambda kind, vm=None, **data: events.append((kind, vm, data)),
                       HostConfig(page_sharing=sharing, **host))
    mm.after_operation = lambda: assert_isolated(mm)
    return mm, events


def page(byte: int) -> bytes:
    return bytes([byte]) * PAGE


def fill(mem, gfn: int, data: bytes) -> None:
    mem.write(gfn * PAGE, data)


def scan_twice(mm) -> None:
    """A page must be seen unchanged twice before it can merge (KSM's volatility test)."""
    mm.sharing.scan(10_000)
    mm.sharing.scan(10_000)
    assert_isolated(mm)


def test_a_guest_frame_gets_a_host_frame_on_first_touch():
    mm, events = manager()
    a = mm.create("a", 1 << 20)
    assert a.table[5] == NOT_PRESENT and mm.pool.free_count == 1024
    assert a.read(5 * PAGE, 4) == bytes(4)              # a read touches it too
    hfn = a.table[5]
    assert hfn != NOT_PRESENT and a.writable[5] and mm.pool.owner[hfn] == "a"
    assert mm.pool.free_count == 1023 and mm.accounts["a"].resident == 1
    assert ("mem.alloc", "a", {"gfn": 5, "hfn": hfn}) in events


def test_identical_pages_in_two_vms_merge_into_one_read_only_frame():
    mm, events = manager()
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    fill(a, 10, page(0x42))
    fill(b, 20, page(0x42))
    fill(b, 21, page(0x43))
    free_before = mm.pool.free_count
    scan_twice(mm)
    shared = a.table[10]
    assert b.table[20] == shared and not a.writable[10] and not b.writable[20]
    assert mm.pool.owner[shared] == SHARED and mm.pool.refcount[shared] == 2
    assert b.writable[21]                                # unique: stays private
    assert mm.pool.free_count == free_before + 1
    counters = mm.sharing.counters()
    assert (counters["pages_shared"], counters["pages_sharing"]) == (1, 1)
    assert [e[0] for e in events if e[0] == "mem.share"] == ["mem.share"]
    assert a.read(10 * PAGE, PAGE) == b.read(20 * PAGE, PAGE) == page(0x42)


def test_a_write_to_a_shared_page_gives_the_writer_a_private_copy():
    mm, events = manager()
    vms = [mm.create(name, 1 << 20) for name in "abc"]
    for mem in vms:
        fill(mem, 7, page(0x11))
    scan_twice(mm)
    shared = vms[0].table[7]
    assert {mem.table[7] for mem in vms} == {shared} and mm.pool.refcount[shared] == 3
    generation = vms[1].generation
    vms[1].write(7 * PAGE + 100, b"\x99")               # b writes one byte
    assert vms[1].table[7] != shared and vms[1].writable[7]
    assert vms[1].generation > generation                # b's vCPUs must flush their TLBs
    assert vms[1].read(7 * PAGE, PAGE) == page(0x11)[:100] + b"\x99" + page(0x11)[101:]
    for other in (vms[0], vms[2]):                      # the others see the old page, still shared
        assert other.table[7] == shared and other.read(7 * PAGE, PAGE) == page(0x11)
    assert mm.pool.refcount[shared] == 2 and mm.accounts["b"].cow_faults == 1
    cow = [e for e in events if e[0] == "mem.cow"]
    assert cow == [("mem.cow", "b", {"gfn": 7, "old_hfn": shared, "hfn": vms[1].table[7], "copied": True})]


def test_the_last_sharer_takes_the_frame_back_without_copying():
    mm, _ = manager()
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    fill(a, 3, page(1))
    fill(b, 3, page(1))
    scan_twice(mm)
    shared = a.table[3]
    b.write(3 * PAGE, b"\x02")                           # b copies
    free = mm.pool.free_count
    a.write(3 * PAGE, b"\x03")                           # a is alone: no copy needed
    assert a.table[3] == shared and a.writable[3] and mm.pool.owner[shared] == "a"
    assert mm.pool.free_count == free and mm.accounts["a"].cow_faults == 0
    assert mm.sharing.counters()["pages_shared"] == 0


def test_zero_pages_share_at_once_in_one_zero_frame():
    mm, events = manager()
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    for gfn in range(8):
        a.read(gfn * PAGE, 1)                            # touched, still zero
        b.read(gfn * PAGE, 1)
    mm.sharing.scan(10_000)                              # one pass is enough for zero pages
    zero = a.table[0]
    assert all(mem.table[g] == zero for mem in (a, b) for g in range(8))
    counters = mm.sharing.counters()
    assert counters["zero_pages_shared"] == 16 and counters["pages_sharing"] == 15
    assert all(e[2]["zero"] for e in events if e[0] == "mem.share")


def test_pages_that_keep_changing_are_volatile_and_not_merged():
    mm, _ = manager()
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    for round_ in range(4):
        fill(a, 1, page(round_ + 1))
        fill(b, 1, page(round_ + 1))
        mm.sharing.scan(10_000)
        assert a.writable[1] and b.writable[1]
    assert mm.sharing.counters()["pages_volatile"] == 2


def test_with_salting_pages_merge_only_within_one_vm():
    mm, _ = manager(sharing="vm")
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    for mem in (a, b):
        fill(mem, 1, page(0x55))
        fill(mem, 2, page(0x55))
        mem.read(3 * PAGE, 1)                           # a zero page in each VM
    scan_twice(mm)
    assert a.table[1] == a.table[2] and b.table[1] == b.table[2]
    assert a.table[1] != b.table[1] and a.table[3] != b.table[3]   # each VM has its own zero frame
    assert mm.pool.refcount[a.table[1]] == 2             # a's shared frame is a's alone
    assert mm.pool.owner[a.table[3]] == mm.pool.owner[b.table[3]] == SHARED


def test_a_hash_only_proposes_bytes_decide(monkeypatch):
    monkeypatch.setattr(page_sharing, "HASH", lambda data: 7)   # every page collides
    mm, _ = manager()
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    fill(a, 1, page(1))
    fill(b, 1, page(2))
    for _ in range(4):
        mm.sharing.scan(10_000)
    assert a.writable[1] and b.writable[1] and b.read(PAGE, PAGE) == page(2)


def test_the_scan_rate_is_pages_per_period_of_guest_time():
    mm, _ = manager(pages_to_scan=10, scan_period_ms=20)
    a = mm.create("a", 1 << 20)
    for gfn in range(50):
        fill(a, gfn, page(gfn))
    visited = []
    original = mm.sharing.scan
    mm.sharing.scan = lambda budget: visited.append(budget) or original(budget)
    mm.tick(19_000_000)                                  # not yet a period
    mm.tick(20_000_000)                                  # one period: 10 pages
    mm.tick(80_000_000)                                  # three more periods at once
    assert visited == [10, 30]


def test_sharing_off_never_scans():
    mm, _ = manager(sharing=False)
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    fill(a, 1, page(9))
    fill(b, 1, page(9))
    for t in range(1, 10):
        mm.tick(t * 100_000_000)
    assert a.table[1] != b.table[1] and mm.sharing.full_scans == 0


@pytest.mark.parametrize("mode", [True, "vm"])
def test_destroying_a_vm_returns_its_frames_and_keeps_the_books_right(mode):
    mm, _ = manager(sharing=mode)
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    for gfn in range(4):
        fill(a, gfn, page(gfn))
        fill(b, gfn, page(gfn))
    scan_twice(mm)
    mm.destroy("a")
    assert_isolated(mm)
    assert b.read(2 * PAGE, PAGE) == page(2)
    mm.destroy("b")
    assert mm.pool.free_count == 1024 and mm.sharing.counters()["pages_shared"] == 0
