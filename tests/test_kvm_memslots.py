"""Pure parts of the KVM backend: frame table -> memory slots, and finding an OUT's EIP."""
from __future__ import annotations

import pytest

from sandbox.backends.kvm.errors import KvmError
from sandbox.backends.kvm.io_rip import out_length
from sandbox.backends.kvm.memslots import SlotRange, SlotTable, layout
from sandbox.vm.memory import NOT_PRESENT

R = SlotRange


def test_consecutive_host_frames_make_one_slot():
    assert layout([10, 11, 12, 13], [True] * 4) == [R(0, 10, 4, False)]


def test_a_jump_in_host_frames_starts_a_new_slot():
    assert layout([10, 11, 50, 51], [True] * 4) == [R(0, 10, 2, False), R(2, 50, 2, False)]


def test_a_shared_page_is_a_read_only_slot_of_its_own():
    assert layout([0, 1, 2, 3], [True, True, False, True]) == [
        R(0, 0, 2, False), R(2, 2, 1, True), R(3, 3, 1, False)]


def test_missing_frames_get_no_slot():
    assert layout([0, NOT_PRESENT, 2], [True, False, True]) == [R(0, 0, 1, False), R(2, 2, 1, False)]


def test_layout_of_a_window():
    assert layout([0, 1, 2, 3, 4], [True] * 5, 1, 3) == [R(1, 1, 2, False)]


def test_diff_keeps_slots_that_are_still_right():
    table = SlotTable(8)
    for r in layout(list(range(8)), [True] * 8):
        table.take(r)
    writable = [True] * 8
    writable[4] = False                                     # page 4 became shared
    lo, hi, old = table.overlapping(4, 5)
    assert (lo, hi) == (0, 8)
    delete, create = table.diff(old, layout(list(range(8)), writable, lo, hi))
    assert [r for r, _slot in delete] == [R(0, 0, 8, False)]
    assert create == [R(0, 0, 4, False), R(4, 4, 1, True), R(5, 5, 3, False)]


def test_slot_ids_are_reused_and_limited():
    table = SlotTable(2)
    a, b = table.take(R(0, 0, 1, False)), table.take(R(1, 9, 1, False))
    assert (a, b) == (0, 1)
    with pytest.raises(KvmError, match="memory slots exhausted"):
        table.take(R(2, 20, 1, False))
    table.release(R(0, 0, 1, False))
    assert table.take(R(2, 20, 1, False)) == 0


# --- which OUT ends at EIP ---------------------------------------------------------------
NOP = 0x90


@pytest.mark.parametrize("code, port, size, dx, default32, length", [
    ([NOP, 0xE6, 0x10], 0x10, 1, 0, False, 2),               # out $0x10, %al
    ([NOP, 0x66, 0xE7, 0x10], 0x10, 4, 0, False, 3),         # out %eax, $0x10 in 16-bit code
    ([NOP, 0xE7, 0x10], 0x10, 4, 0, True, 2),                # ... in 32-bit code
    ([NOP, 0xEE], 0x3F8, 1, 0x3F8, False, 1),                # out %al, %dx
    ([NOP, 0xF3, 0x6E], 0x3F8, 1, 0x3F8, False, 2),          # rep outsb
    ([NOP, 0x2E, 0xF3, 0x6E], 0x3F8, 1, 0x3F8, False, 3),    # rep outsb %cs:(%si)
    ([NOP, NOP], 0x3F8, 1, 0x3F8, False, None),              # no OUT there
    ([NOP, 0xEE], 0x3F8, 1, 0x2F8, False, None),             # DX names another port
    ([NOP, 0xE7, 0x10], 0x10, 2, 0, True, None),             # 16-bit data needs 66 in 32-bit code
])
def test_out_length(code, port, size, dx, default32, length):
    assert out_length(bytes(code), port, size, dx, default32) == length
