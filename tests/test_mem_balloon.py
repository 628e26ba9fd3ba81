"""Ballooning with real guests: the balloon demo guest and tinyos's driver give pages to
the hypervisor through the hypercall port when the target rises, take them back when
it falls, and check their own memory all along. Under QEMU (no port) the same guests
run with the driver off: see guests/expected/balloon.txt."""
from __future__ import annotations

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.events import EventRecorder
from sandbox.guestbuild import IMAGES_DIR
from sandbox.hypervisor.hypercalls import HYPERCALLS
from sandbox.vm.memory import NOT_PRESENT

MS = 1_000_000


def machine(*vms: VmConfig, **host) -> Machine:
    m = Machine(MachineConfig(HostConfig(**host), list(vms)))
    m.power_on()
    return m


def test_the_balloon_hypercalls_are_in_the_table():
    assert {n: HYPERCALLS[n].name for n in (0x10, 0x11, 0x12)} == {
        0x10: "balloon_target", 0x11: "balloon_inflate", 0x12: "balloon_deflate"}


def test_the_balloon_guest_gives_pages_back_and_takes_them_back():
    vm = VmConfig(name="b", memory_mib=4, kernel=IMAGES_DIR / "balloon.elf",
                  cmdline="kib=1024 ticks=60 work=10", balloon=True)
    m = machine(vm)
    mm = m.hypervisor.memory_manager
    acct, mem = mm.accounts["b"], m.vm().memory
    m.run(until_ns=100 * MS)                   # the guest has used all its free RAM as a cache
    resident = acct.resident
    assert resident > 700
    mm.balloon.force("b", 200)                 # the teacher's lever: "give 200 pages back"
    m.run(until_ns=200 * MS)
    assert len(mem.ballooned) == 200 and acct.resident == resident - 200
    assert all(mem.table[g] == NOT_PRESENT for g in mem.ballooned)
    assert m.memcheck() == []
    mm.balloon.force("b", None)                # the host has plenty: the balloon deflates
    m.run(wall_timeout_s=30)
    console = m.vm().console.decode()
    assert "driver on" in console
    assert "the balloon holds 200 pages (800 KiB) for the hypervisor" in console
    assert "the balloon holds 0 pages" in console and "done, 0 errors" in console
    assert not mem.ballooned and acct.balloon_target == 0
    assert m.memcheck() == []
    m.close()


def test_tinyos_lends_free_ram_from_the_top_and_shows_it_in_its_shell():
    vm = VmConfig(name="tinyos", memory_mib=16, kernel=IMAGES_DIR / "tinyos.elf")
    m = machine(vm)
    mm = m.hypervisor.memory_manager
    mem = m.vm().memory
    m.run(until_ns=50 * MS)
    mm.balloon.force("tinyos", 512)
    m.run(until_ns=150 * MS)
    m.feed("tinyos", "balloon\n")
    m.run(until_ns=200 * MS)
    ballooned = sorted(mem.ballooned)
    assert len(ballooned) == 512 and ballooned == list(range(ballooned[0], ballooned[0] + 512))
    assert ballooned[-1] >= mem.frames - 64                # from the top of RAM down
    assert "balloon: holding 512 pages (2048 KiB)" in m.vm().console.decode()
    mm.balloon.force("tinyos", None)
    m.run(until_ns=400 * MS)
    m.feed("tinyos", "balloon\npoweroff\n")
    m.run(wall_timeout_s=30)
    assert "balloon: holding 0 pages (0 KiB)" in m.vm().console.decode()
    assert not mem.ballooned and m.vm().state.value == "powered_off"
    m.close()


def test_host_pressure_inflates_the_balloon_before_anything_is_swapped():
    """A memhog squeezes the host; the hypervisor asks the balloon VM for pages first."""
    vms = [VmConfig(name="cache", memory_mib=4, kernel=IMAGES_DIR / "balloon.elf",
                    cmdline="kib=256 ticks=120 work=10", balloon=True),
           VmConfig(name="hog", memory_mib=4, kernel=IMAGES_DIR / "memhog.elf",
                    cmdline="kib=3072 rate=8 passes=2 seed=5")]
    m = machine(*vms, memory_mib=6)
    rec = EventRecorder(m.events, ["mem.state", "mem.balloon", "mem.swap_out"])
    m.run(wall_timeout_s=60)
    kinds = [e.kind + ":" + e.data.get("action", "") for e in rec.events]
    assert "mem.balloon:inflate" in kinds
    if "mem.swap_out:" in kinds:
        assert kinds.index("mem.balloon:inflate") < kinds.index("mem.swap_out:")
    assert [e.data["new"] for e in rec.events if e.kind == "mem.state"][:2] == ["clear", "soft"]
    for vm in m.vms.values():
        assert "done, 0 errors" in vm.console.decode(), vm.console.decode()
    assert m.memcheck() == []
    m.close()
