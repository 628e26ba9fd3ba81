"""The isolation checker finds every kind of broken invariant injected on purpose; a guest
touching guest-physical memory it does not have meets open bus, never another VM's
frame; ``sandbox memcheck`` and ``Machine.memcheck()`` run the checker on a scenario."""
from __future__ import annotations

import pytest
from asm import assemble, needs_as
from pmode import program

from sandbox.api import Machine
from sandbox.cli.main import main
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.events import EventRecorder
from sandbox.guestbuild import IMAGES_DIR
from sandbox.host.ram import PAGE, FramePool
from sandbox.hypervisor.isolation import RULES, IsolationError, assert_isolated, check
from sandbox.hypervisor.memory_accounts import SHARED
from sandbox.hypervisor.memory_manager import MemoryManager


def populated():
    """Two VMs with private, shared, zero, swapped and free pages: everything in order."""
    mm = MemoryManager(FramePool(1024), lambda *a, **k: None, HostConfig(page_sharing=True))
    a, b = mm.create("a", 1 << 20), mm.create("b", 1 << 20)
    for mem in (a, b):
        for gfn in range(20):
            mem.write(gfn * PAGE, bytes([gfn + 1]) * PAGE)      # 0-19 are twins across a and b
        mem.write(30 * PAGE, mem.vm_name.encode() * PAGE)       # 30 is private
        mem.read(40 * PAGE, 1)                                   # 40 is a zero page
    mm.sharing.scan(10_000)
    mm.sharing.scan(10_000)
    mm.swap.evict(mm.accounts["b"], 1)
    assert check(mm) == []
    return mm, a, b


def private_frame(mem) -> int:
    return mem.table[30]


# Each injection breaks one invariant, as a bug in the memory manager could.
def _writable_in_two_vms(mm, a, b):
    b.table[30], b.writable[30] = a.table[30], True


def _free_and_mapped(mm, a, b):
    mm.pool.release(a.table[30])             # freed behind the table's back


def _wrong_refcount(mm, a, b):
    mm.pool.refcount[a.table[1]] += 1


def _shared_frame_writable(mm, a, b):
    a.writable[1] = True


def _shared_content_changed(mm, a, b):
    hfn = a.table[1]
    mm.pool.view[hfn * PAGE] ^= 0xFF


def _foreign_frame(mm, a, b):
    mm.pool.owner[a.table[30]] = "b"


def _leaked_frame(mm, a, b):
    mm.pool.alloc("a")


def _dirty_free_frame(mm, a, b):
    free = next(h for h in range(mm.pool.frames) if mm.pool.is_free(h))
    mm.pool.view[free * PAGE] = 0x41


def _swapped_but_mapped(mm, a, b):
    a.swapped[30] = 999


def _over_the_limit(mm, a, b):
    mm.accounts["a"].limit_pages = 3


def _wrong_accounting(mm, a, b):
    mm.accounts["b"].resident += 1


@pytest.mark.parametrize("inject, rule", [
    (_writable_in_two_vms, "writable_twice"),
    (_free_and_mapped, "free_and_mapped"),
    (_wrong_refcount, "refcount"),
    (_shared_frame_writable, "shared_writable"),
    (_shared_content_changed, "shared_content"),
    (_foreign_frame, "own_frames"),
    (_leaked_frame, "leak"),
    (_dirty_free_frame, "free_zeroed"),
    (_swapped_but_mapped, "not_present"),
    (_over_the_limit, "limit"),
    (_wrong_accounting, "accounting"),
])
def test_the_checker_finds_an_inconsistency_injected_on_purpose(inject, rule):
    mm, a, b = populated()
    inject(mm, a, b)
    found = {v.rule for v in check(mm)}
    assert rule in found, found
    with pytest.raises(IsolationError, match="isolation broken"):
        assert_isolated(mm)


def test_every_rule_has_a_sentence_for_the_teacher():
    assert all(text.endswith(".") and len(text) > 30 for text in RULES.values())
    assert SHARED == "<shared>"


@needs_as
def test_a_guest_touching_memory_it_does_not_have_meets_open_bus(tmp_path):
    """A 2 MiB VM writes 0xedcba987 at 3 MiB and reads it back: open bus (all ones), an
    isolation event, and no frame anywhere holds that value."""
    code = program("""
    mov $0x12345678, %eax
    not %eax                        # 0xedcba987: a value not in the program's own bytes
    mov %eax, 0x300000
    mov 0x300000, %ebx
    cmp $0xffffffff, %ebx
    jne 1f
    mov $0x21, %al
    jmp exit_al
1:  mov $0x22, %al
    jmp exit_al
""")
    image = assemble(code, 0x7C00)
    disk = tmp_path / "probe.img"
    disk.write_bytes(image + bytes(32 * 512 - len(image)))
    vms = [VmConfig(name="probe", memory_mib=2, disk=disk), VmConfig(name="neighbour", memory_mib=2,
           kernel=IMAGES_DIR / "memhog.elf", cmdline="kib=256 passes=1")]
    m = Machine(MachineConfig(HostConfig(memory_mib=8), vms))
    rec = EventRecorder(m.events, ["mem.isolation"])
    m.power_on()
    m.run(wall_timeout_s=30)
    assert m.vms["probe"].exit_status == (0x21 << 1) | 1
    assert [(e.vm, e.data["gpa"], e.data["write"]) for e in rec.events][:1] == [("probe", 0x300000, True)]
    assert (0xEDCBA987).to_bytes(4, "little") not in bytes(m.hypervisor.host.ram.buffer)
    assert "0 errors" in m.vms["neighbour"].console.decode()
    assert m.memcheck() == []
    m.close()


def twins_config(tmp_path, sharing: str = "true"):
    toml = tmp_path / "twins.toml"
    vms = "".join(f"""
[[vm]]
name = "t{i}"
memory_mib = 2
kernel = "{IMAGES_DIR / 'twins.elf'}"
cmdline = "kib=512 rate=32 checks=2 interval=5"
""" for i in range(3))
    toml.write_text(f"""[host]
memory_mib = 4
page_sharing = {sharing}
pages_to_scan = 500
scan_period_ms = 5
{vms}""")
    return toml


def test_memcheck_runs_a_scenario_and_reports_that_isolation_holds(tmp_path, capsys):
    assert main(["memcheck", str(twins_config(tmp_path)), "--every", "20"]) == 0
    out = capsys.readouterr().out
    assert "isolation holds" in out and "state high" in out
    assert out.count("powered_off") == 3


def test_memcheck_prints_json_and_refuses_a_non_config(tmp_path, capsys):
    assert main(["memcheck", str(twins_config(tmp_path, '"vm"')), "--for", "0.05", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"isolated": true' in out and '"page_sharing": "vm"' in out
    assert main(["memcheck", str(IMAGES_DIR / "hello.img")]) == 2
    assert "needs a machine config" in capsys.readouterr().err


def test_memcheck_stops_at_the_first_broken_invariant(tmp_path, capsys, monkeypatch):
    from sandbox.hypervisor import page_sharing

    original = page_sharing.PageSharing._merge

    def buggy_merge(self, acct, gfn, hfn, shared):      # forgets to make the page read-only
        original(self, acct, gfn, hfn, shared)
        acct.memory.writable[gfn] = True
    monkeypatch.setattr(page_sharing.PageSharing, "_merge", buggy_merge)
    assert main(["memcheck", str(twins_config(tmp_path))]) == 1
    out = capsys.readouterr().out
    assert "isolation BROKEN" in out and "shared_writable" in out
