"""Reclamation when the host runs short: ESXi's host memory states and order (sharing,
then ballooning, then swapping), reservations, limits and shares, the swap file.
Driven through the memory manager; the isolation checker runs after every operation."""
from __future__ import annotations

import pytest

from sandbox.config.model import HostConfig, VmConfig
from sandbox.errors import ConfigError
from sandbox.host.ram import PAGE, FramePool
from sandbox.hypervisor.isolation import assert_isolated
from sandbox.hypervisor.memory_manager import HostMemoryError, MemoryManager
from sandbox.hypervisor.reclaim import STATES, classify, min_free_frames
from sandbox.vm.memory import NOT_PRESENT


def manager(frames: int, vms: list[VmConfig] = (), sharing=False, **host):
    events: list[tuple[str, str | None, dict]] = []
    mm = MemoryManager(FramePool(frames), lambda kind, vm=None, **data: events.append((kind, vm, data)),
                       HostConfig(page_sharing=sharing, **host), vms)
    mm.after_operation = lambda: assert_isolated(mm, content=False)    # the cheap checks, every time
    return mm, events


def content(vm: str, gfn: int) -> bytes:
    return (f"{vm}:{gfn}:".encode() * PAGE)[:PAGE]


def touch(mem, gfns) -> None:
    for gfn in gfns:
        mem.write(gfn * PAGE, content(mem.vm_name, gfn))


def intact(mem, gfns) -> bool:
    return all(mem.read(gfn * PAGE, PAGE) == content(mem.vm_name, gfn) for gfn in gfns)


# --- the states --------------------------------------------------------------------------------
def test_host_memory_states_follow_esxi_thresholds_of_min_free():
    assert [s.name for s in STATES] == ["high", "clear", "soft", "hard", "low"]
    assert min_free_frames(12288) == 737                       # 6% of a 48 MiB host
    assert [classify(free, 100).name for free in (100, 99, 64, 63, 32, 31, 16, 15, 0)] == \
        ["high", "clear", "clear", "soft", "soft", "hard", "hard", "low", "low"]


# --- swapping ----------------------------------------------------------------------------------
def test_a_swapped_page_comes_back_with_its_contents_on_the_next_touch():
    mm, events = manager(1024)
    a = mm.create("a", 1 << 20)
    touch(a, range(40))
    free = mm.pool.free_count
    assert mm.swap.evict(mm.accounts["a"], 25) == 25
    assert mm.pool.free_count == free + 25 and len(a.swapped) == 25
    assert all(a.table[g] == NOT_PRESENT for g in a.swapped)
    assert intact(a, range(40))                                # every page, swapped or not
    assert not a.swapped and mm.swap.file.used == 0
    kinds = [e[0] for e in events]
    assert kinds.count("mem.swap_out") == 25 and kinds.count("mem.swap_in") == 25


def test_a_named_swap_file_holds_the_pages_and_is_emptied_at_close(tmp_path):
    path = tmp_path / "host.swap"
    mm, _ = manager(1024, swap_file=path)
    a = mm.create("a", 1 << 20)
    touch(a, range(20))
    mm.swap.evict(mm.accounts["a"], 4)
    data = path.read_bytes()
    assert len(data) == 4 * PAGE and all(content("a", g) in data for g in a.swapped)
    mm.close()
    assert path.read_bytes() == b""


def test_a_limit_is_never_exceeded_and_the_rest_is_swapped():
    mm, _ = manager(2048, [VmConfig(name="a", memory_mib=2, mem_limit_mib=1)])
    a = mm.create("a", 2 << 20)
    acct = mm.accounts["a"]
    assert acct.limit_pages == 256
    touch(a, range(400))
    assert acct.resident == 256 and len(a.swapped) == 144
    assert mm.pool.free_count > 1000                            # the host had plenty: the limit did it
    assert intact(a, range(400)) and acct.resident <= 256


def test_a_reservation_is_guaranteed_even_before_it_is_used():
    vms = [VmConfig(name="a", memory_mib=2, mem_reservation_mib=1), VmConfig(name="b", memory_mib=4)]
    mm, _ = manager(768, vms)                                   # 3 MiB host, 1 MiB reserved for a
    a, b = mm.create("a", 2 << 20), mm.create("b", 4 << 20)
    touch(b, range(700))                                        # b wants more than is left for it
    assert mm.pool.free_count >= 256 and len(b.swapped) > 0     # a's 256 frames stayed untouched
    touch(a, range(256))                                        # a gets them without any swapping
    assert not a.swapped and mm.accounts["a"].resident == 256
    touch(b, range(700, 800))                                   # pressure again: a keeps its pages
    assert not a.swapped and intact(a, range(256)) and intact(b, range(800))


def test_admission_control_refuses_reservations_the_host_cannot_hold():
    vms = [VmConfig(name="a", memory_mib=4, mem_reservation_mib=3),
           VmConfig(name="b", memory_mib=4, mem_reservation_mib=3)]
    with pytest.raises(ConfigError, match="reserve 6 MiB but the host has only 4 MiB"):
        manager(1024, vms)


@pytest.mark.parametrize("vm, problem", [
    (VmConfig(name="a", memory_mib=2, mem_reservation_mib=3), "more than its memory_mib"),
    (VmConfig(name="a", memory_mib=4, mem_reservation_mib=2, mem_limit_mib=1), "below its mem_reservation_mib"),
])
def test_inconsistent_memory_controls_are_one_line_config_errors(vm, problem):
    with pytest.raises(ConfigError, match=problem):
        manager(1024, [vm])


def test_when_nothing_can_be_reclaimed_the_error_says_so():
    mm, _ = manager(512, [VmConfig(name="a", memory_mib=2, mem_reservation_mib=2)])
    a, b = mm.create("a", 2 << 20), mm.create("b", 1 << 20)
    touch(a, range(512))                                       # a owns the whole host, reserved
    with pytest.raises(HostMemoryError, match="nothing can be reclaimed"):
        touch(b, range(1))


def test_shares_decide_who_loses_memory_under_contention():
    vms = [VmConfig(name="low", memory_mib=4, mem_shares="low"),
           VmConfig(name="high", memory_mib=4, mem_shares="high")]
    mm, _ = manager(512, vms)
    low, high = mm.create("low", 4 << 20), mm.create("high", 4 << 20)
    touch(low, range(450))
    touch(high, range(450))                                    # 900 pages on a 512-frame host
    assert len(low.swapped) > len(high.swapped) > 0
    ratio = mm.accounts["high"].resident / mm.accounts["low"].resident
    assert 3.5 < ratio < 4.5                                   # resident memory follows the 1:4 shares
    assert intact(low, range(450)) and intact(high, range(450))


# --- the order: sharing, then ballooning, then swapping -----------------------------------------
def test_reclamation_goes_sharing_then_ballooning_then_swapping():
    vms = [VmConfig(name="a", memory_mib=4, balloon=True), VmConfig(name="b", memory_mib=8)]
    mm, events = manager(1024, vms, sharing=True, pages_to_scan=2000, scan_period_ms=1)
    a, b = mm.create("a", 4 << 20), mm.create("b", 8 << 20)
    touch(a, range(300))
    for gfn in range(300):                                     # b's pages are a's twins
        b.write(gfn * PAGE, content("a", gfn))
    t = 0

    def tick():
        nonlocal t
        t += 1_000_000
        mm.tick(t)

    tick(); tick()                                             # sharing merges b into a
    assert mm.sharing.counters()["pages_sharing"] == 300 and mm.reclaim.state.name == "high"
    touch(b, range(300, 990))                                  # b's own pages squeeze the host
    assert not mm.swap.swapped_out
    tick()
    assert mm.reclaim.state.name == "soft"
    assert mm.accounts["a"].balloon_target > 0                 # the balloon is asked first
    touch(b, range(990, 1100))                                 # no driver answers: swapping follows
    tick()
    kinds = [e[0] for e in events]
    first = {k: kinds.index(k) for k in ("mem.share", "mem.balloon", "mem.swap_out")}
    assert first["mem.share"] < first["mem.balloon"] < first["mem.swap_out"]
    assert intact(a, range(300)) and intact(b, range(300, 1100))


# --- the balloon from the hypervisor's side --------------------------------------------------------
def test_inflating_frees_the_frames_and_deflating_gives_zero_pages_on_touch():
    mm, events = manager(1024, [VmConfig(name="a", memory_mib=2, balloon=True)])
    a = mm.create("a", 2 << 20)
    acct = mm.accounts["a"]
    touch(a, range(100, 164))
    mm.balloon.set_target("a", 64)
    free = mm.pool.free_count
    assert mm.balloon.inflate(acct, list(range(100, 164))) == 64
    assert mm.pool.free_count == free + 64 and len(a.ballooned) == 64
    assert all(a.table[g] == NOT_PRESENT for g in range(100, 164))
    assert mm.balloon.deflate(acct, list(range(100, 132))) == 32
    assert a.read(100 * PAGE, PAGE) == bytes(PAGE)             # taken back: a fresh zero page
    assert a.read(140 * PAGE, PAGE) == bytes(PAGE)             # touched while ballooned: the same
    assert 140 not in a.ballooned
    actions = [e[2]["action"] for e in events if e[0] == "mem.balloon"]
    assert actions.count("inflate") == 64 and actions.count("deflate") == 32 and "touched" in actions


def test_the_balloon_never_takes_a_vm_below_its_reservation():
    mm, _ = manager(1024, [VmConfig(name="a", memory_mib=2, mem_reservation_mib=1, balloon=True)])
    a = mm.create("a", 2 << 20)
    touch(a, range(300))
    assert mm.balloon.inflate(mm.accounts["a"], list(range(300))) == 300 - 256
    assert mm.accounts["a"].resident == 256


def test_a_limit_below_the_vm_size_inflates_its_balloon():
    vms = [VmConfig(name="a", memory_mib=4, mem_limit_mib=3, balloon=True)]
    mm, _ = manager(4096, vms)
    mm.create("a", 4 << 20)
    mm.tick(1_000_000)
    assert mm.accounts["a"].balloon_target == 256              # ESXi does the same
