"""Memory virtualization with real guests that check their own memory: twins (page
sharing), memhog (swapping, limits, reservations), and two runs that must agree."""
from __future__ import annotations

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.events import EventRecorder
from sandbox.guestbuild import IMAGES_DIR
from sandbox.hypervisor.mem_report import host_memory, vm_memory

MS = 1_000_000
TWINS = "kib=768 rate=32 checks=2 interval=10"


def twins(n: int, host_mib: int | None, sharing, cmdline: str = TWINS) -> Machine:
    vms = [VmConfig(name=f"twin{i}", memory_mib=2, kernel=IMAGES_DIR / "twins.elf", cmdline=cmdline)
           for i in range(n)]
    host = HostConfig(memory_mib=host_mib, page_sharing=sharing, pages_to_scan=1000, scan_period_ms=5)
    m = Machine(MachineConfig(host, vms))
    m.power_on()
    return m


def verified(m: Machine) -> bool:
    return all(vm.state.value == "powered_off" and "done, 0 errors" in vm.console.decode()
               for vm in m.vms.values())


def test_eight_twins_run_in_a_host_too_small_for_eight_copies():
    m = twins(8, 3, True)                       # 8 x ~220 pages of twins on 768 frames
    mm = m.hypervisor.memory_manager
    sharing = []
    while m.run(until_ns=m.now_ns + 20 * MS, wall_timeout_s=60) == "time":
        host = host_memory(mm)
        resident = sum(vm_memory(mm, name)["resident_pages"] for name in m.vms)
        in_use = host["frames_total"] - host["frames_free"]
        assert in_use == resident - host["pages_sharing"]   # each sharing page is a frame freed
        sharing.append(host["pages_sharing"])
    assert verified(m)
    assert sharing[0] < sharing[len(sharing) // 2] < sharing[-1] + 50   # sharing grew as twins filled
    assert sharing[-1] > 7 * 180                # nearly all of seven copies saved
    resident = sum(vm_memory(mm, name)["resident_pages"] for name in m.vms)
    assert resident > mm.pool.frames            # more guest pages than host frames...
    assert mm.swap.swapped_out == 0             # ...and no swapping
    assert m.memcheck() == []
    m.close()


def test_with_salting_twins_never_share_a_frame_across_vms():
    m = twins(3, None, "vm")
    mm = m.hypervisor.memory_manager
    m.run(wall_timeout_s=60)
    assert verified(m)
    frames = {name: {h for h in acct.memory.table if h >= 0} for name, acct in mm.accounts.items()}
    names = list(frames)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not frames[a] & frames[b], f"{a} and {b} share a frame"
    assert host_memory(mm)["zero_pages_shared"] > 0          # within a VM, sharing still works
    m.close()


def memhog(name: str, memory_mib: int, cmdline: str, **controls) -> VmConfig:
    return VmConfig(name=name, memory_mib=memory_mib, kernel=IMAGES_DIR / "memhog.elf",
                    cmdline=cmdline, **controls)


def test_memhog_over_its_limit_is_swapped_and_finds_every_word_intact():
    vm = memhog("hog", 4, "kib=2048 passes=3 seed=9", mem_limit_mib=1)
    m = Machine(MachineConfig(HostConfig(), [vm]))
    mm = m.hypervisor.memory_manager
    m.power_on()
    acct = mm.accounts["hog"]
    peak = []
    mm.after_operation = lambda: peak.append(acct.resident)
    m.run(wall_timeout_s=60)
    assert "memhog: done, 0 errors" in m.vm().console.decode()
    assert max(peak) <= acct.limit_pages == 256
    assert acct.swap_outs > 500 and acct.swap_ins > 500      # every pass goes through swap
    assert m.memcheck() == []
    m.close()


def test_a_reservation_holds_while_another_vm_is_swapped():
    vms = [memhog("reserved", 3, "kib=1600 rate=8 passes=2 seed=1", mem_reservation_mib=2),
           memhog("greedy", 4, "kib=3000 passes=2 seed=2")]
    m = Machine(MachineConfig(HostConfig(memory_mib=4), vms))
    m.power_on()
    m.run(wall_timeout_s=60)
    mm = m.hypervisor.memory_manager
    assert verified(m)
    assert mm.accounts["reserved"].swap_outs == 0               # its pages all fit its reservation
    assert mm.accounts["greedy"].swap_outs > 0
    m.close()


def mixed_run() -> tuple[dict, list[tuple[str, str | None, int]]]:
    vms = [VmConfig(name=f"twin{i}", memory_mib=2, kernel=IMAGES_DIR / "twins.elf",
                    cmdline="kib=512 rate=16 checks=2 interval=5") for i in range(2)]
    vms += [memhog("hog", 4, "kib=2048 rate=16 passes=2 seed=4"),
            VmConfig(name="cache", memory_mib=4, kernel=IMAGES_DIR / "balloon.elf",
                     cmdline="kib=256 ticks=40 work=10", balloon=True)]
    m = Machine(MachineConfig(HostConfig(memory_mib=5, page_sharing=True, pages_to_scan=500,
                                         scan_period_ms=5), vms))
    rec = EventRecorder(m.events, ["mem.share", "mem.cow", "mem.balloon", "mem.swap_out",
                                   "mem.swap_in", "mem.state"])
    m.power_on()
    m.run(wall_timeout_s=60)
    report = m.report()
    counters = {"host": report["host"]["memory"], "vms": {v["name"]: v["memory"] for v in report["vms"]},
                "time": report["guest_time_seconds"], "consoles": [v["console"] for v in report["vms"]]}
    m.close()
    return counters, [(e.kind, e.vm, e.time_ns) for e in rec.events]


def test_two_deterministic_runs_give_the_same_counters():
    first, first_events = mixed_run()
    second, second_events = mixed_run()
    assert first == second
    assert first_events == second_events
    kinds = {kind for kind, _vm, _t in first_events}
    assert {"mem.share", "mem.swap_out", "mem.balloon"} <= kinds  # every mechanism took part
    assert all("0 errors" in console for console in first["consoles"])


def test_the_report_has_the_memory_fields():
    m = twins(2, None, True, "kib=256 checks=1 interval=1")
    m.run(wall_timeout_s=30)
    report = m.report()
    host = report["host"]["memory"]
    for key in ("frames_total", "frames_free", "pages_shared", "pages_sharing", "pages_unshared",
                "pages_volatile", "full_scans", "zero_pages_shared", "swapped_pages", "ballooned_pages"):
        assert isinstance(host[key], int), key
    assert host["state"] in ("high", "clear", "soft", "hard", "low")
    for vm in report["vms"]:
        assert set(vm["memory"]) >= {"resident_pages", "shared_pages", "swapped_pages", "ballooned_pages",
                                     "cow_faults", "reservation_pages", "limit_pages"}
    m.close()
