"""Lab 3: the page-sharing scanner's merge step."""
import pytest

from sandbox.hypervisor.isolation import check


@pytest.mark.points(1, hint="merge.py must define merge(sharing, acct, gfn, hfn, shared).")
def test_merge_is_defined(student_module):
    """merge.py defines a merge function with five parameters."""
    merge = student_module("merge.py").merge
    assert merge.__code__.co_argcount == 5


@pytest.mark.points(3, hint="The shared frame gains a user (refcount) and the private frame is released.")
def test_twins_share_their_memory(twins):
    """The twins' identical pages end up in shared frames: host frames are saved."""
    memory = twins.report()["host"]["memory"]
    assert memory["pages_sharing"] >= 64, f"only {memory['pages_sharing']} host frames saved"


@pytest.mark.points(4, hint="Read-only mapping, refcount + 1, invalidate, release the old frame.")
def test_isolation_checker_stays_green(twins):
    """No broken invariant: no frame writable twice, refcounts match mappings, no leaked frame."""
    problems = check(twins.hypervisor.memory_manager)
    assert not problems, f"{len(problems)} broken invariants, the first: {problems[0]}"


@pytest.mark.points(2, hint="After a merge the guest must read the same bytes as before.")
def test_twins_still_read_what_they_wrote(twins):
    """Each twin verifies its memory several times and finishes without corruption."""
    for vm in twins.vms.values():
        console = vm.console.decode("latin-1")
        assert "CORRUPTED" not in console, f"{vm.name}: {console[-200:]!r}"
        assert vm.state.value == "powered_off", f"{vm.name} is {vm.state.value}: {console[-200:]!r}"


@pytest.mark.points(2, hint="A merged page must be read-only for the guest, so that a write is copied first.")
def test_a_write_after_a_merge_stays_in_its_vm(twins):
    """A write (here by a device, DMA-style) to a merged page of one twin gets a private
    copy: the other twin's page does not change."""
    left, right = (twins.vms[n].memory for n in ("left", "right"))
    common = [g for g, h in enumerate(left.table) if h >= 0 and right.table[g] == h]
    assert common, "the twins share no page at the same address"
    gpa = common[-1] << 12
    before = right.read(gpa, 16)
    left.write(gpa, b"written by left!")
    assert left.read(gpa, 16) == b"written by left!"
    assert right.read(gpa, 16) == before, "the write to left's page changed right's page"
