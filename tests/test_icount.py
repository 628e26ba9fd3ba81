"""The deterministic instruction clock (sandbox/backends/unicorn/icount.py).

Every test runs both implementations: ``native`` (machine code, x86-64 Linux hosts)
and ``python`` (the fallback). They must agree exactly: same counts, same stop points.
"""
import re

import capstone
import pytest
from unicorn import (UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_TLB_FILL, UC_PROT_ALL,
                     UC_TLB_VIRTUAL, Uc)
from unicorn.unicorn_const import UC_ARCH_X86, UC_MODE_32
from unicorn.x86_const import (UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_REG_CR0,
                               UC_X86_REG_CS, UC_X86_REG_EAX,
                               UC_X86_REG_EBX, UC_X86_REG_ECX, UC_X86_REG_EIP)

from sandbox.backends.unicorn import icount_native as native
from sandbox.backends.unicorn.icount import (FOREVER, ClockError, InstructionClock,
                                             PythonInstructionClock)
from sandbox.backends.unicorn.icount_bench import (BOOT_INSNS, ORIGIN, RAM_SIZE,
                                                   WORKLOADS, boot, new_vcpu, run_sliced)
from sandbox.errors import SandboxError

KINDS = [pytest.param("native", marks=pytest.mark.skipif(
             not native.native_supported(), reason="native clock needs x86-64 Linux")),
         "python"]
ALU, XORSHIFT, IO = WORKLOADS["alu"], WORKLOADS["xorshift"], WORKLOADS["io"]
LOOP_BLOCK = 5                       # alu: one block of 5 instructions per iteration


def booted(kind, workload, iterations, uc=None, ram_base=0):
    """A vCPU with a clock, booted to the workload's entry in protected mode."""
    uc = new_vcpu(uc, ram_base)
    clock = InstructionClock(uc, kind)
    boot(uc, workload, iterations)
    return uc, clock


def eip(uc):
    return uc.reg_read(UC_X86_REG_EIP)


# --- the machine code ---------------------------------------------------------------

def test_every_machine_code_row_decodes_to_the_instruction_it_documents():
    labels = {row[3]: row[0] for row in native.HOOK_CODE if row[3]}
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    offset = 0
    for row_offset, code, asm, _label, why in native.HOOK_CODE:
        assert row_offset == offset, f"row {asm!r} is not where the previous one ends"
        raw = bytes.fromhex(code)
        [insn] = md.disasm(raw, row_offset)
        expected = re.sub(r"\b(" + "|".join(labels) + r")\b",
                          lambda m: hex(labels[m.group(1)]), asm)
        assert insn.size == len(raw)
        assert f"{insn.mnemonic} {insn.op_str}".strip() == expected
        assert " | " in why, f"row {asm!r} must say what it does | how it is encoded"
        offset += len(raw)
    assert native.HOOK_BYTES == b"".join(bytes.fromhex(row[1]) for row in native.HOOK_CODE)
    assert len(native.HOOK_BYTES) == 83


def test_state_offsets_are_the_displacements_the_code_uses():
    assert native.ClockState.remaining.offset == 0       # [rcx]
    assert native.ClockState.expired.offset == 8         # [rcx + 8]
    assert native.ClockState.emu_stop.offset == 16       # jmp [rcx + 0x10]
    assert native.ClockState.miss.offset == 24           # call [rcx + 0x18]
    assert native.HEADER == 0x20                         # lea rax, [rcx + rax + 0x20]
    assert native.TABLE_SETS - 1 == 0x3fff and native.HASH_SHIFT == 0xe


@pytest.mark.skipif(not native.native_supported(), reason="x86-64 Linux only")
def test_code_page_is_read_and_execute_but_never_writable():
    address = native.hook_address()
    with open("/proc/self/maps") as maps:
        for line in maps:
            start, end = (int(x, 16) for x in line.split()[0].split("-"))
            if start <= address < end:
                assert line.split()[1] == "r-xp"
                return
    pytest.fail("hook page not found in /proc/self/maps")


@pytest.mark.skipif(not native.native_supported(), reason="x86-64 Linux only")
def test_the_machine_code_on_its_own_with_fake_uc_emu_stop_and_miss():
    import ctypes
    calls = []
    state = native.ClockState()
    stop = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(
        lambda uc: calls.append(("uc_emu_stop", uc)) or 0)
    miss = native.MISS_CFUNC(
        lambda uc, address, size, st: calls.append(("miss", uc, address, size, st)) or 7)
    state.emu_stop = ctypes.cast(stop, ctypes.c_void_p).value
    state.miss = ctypes.cast(miss, ctypes.c_void_p).value
    hook = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32,
                            ctypes.c_void_p)(native.hook_address())
    me, uc = ctypes.addressof(state), 0x1234

    state.remaining = 10                      # unknown block: ask miss(), count its answer
    hook(uc, 0x8040, 10, me)
    assert calls == [("miss", uc, 0x8040, 10, me)] and state.remaining == 3
    way0 = 2 * native.set_index(0x8040)
    state.table[way0 + 1].address, state.table[way0 + 1].size = 0x8040, 10
    state.table[way0 + 1].icount = 2          # known in way 1: no call
    hook(uc, 0x8040, 10, me)
    assert len(calls) == 1 and state.remaining == 1
    state.table[way0].address, state.table[way0].size, state.table[way0].icount = 0x8040, 9, 4
    hook(uc, 0x8040, 9, me)                   # same address, other size: way 0's entry
    assert len(calls) == 1 and state.remaining == -3 and state.expired == 0
    hook(uc, 0x8040, 10, me)                  # budget used up: stop, count nothing
    assert calls[1:] == [("uc_emu_stop", uc)]
    assert state.remaining == -3 and state.expired == 1


# --- counting ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ["alu", "xorshift"])
def test_a_whole_run_counts_every_instruction_and_changes_nothing(kind, name):
    workload, iterations = WORKLOADS[name], 300
    plain = new_vcpu()
    boot(plain, workload, iterations)
    plain.emu_start(workload.entry, workload.end)

    uc, clock = booted(kind, workload, iterations)
    uc.emu_start(workload.entry, workload.end)

    assert clock.retired == BOOT_INSNS + workload.instructions(iterations)
    assert not clock.expired
    assert uc.reg_read(UC_X86_REG_EBX) == plain.reg_read(UC_X86_REG_EBX)


@pytest.mark.parametrize("kind", KINDS)
def test_each_block_counts_what_capstone_decodes_in_real_and_protected_mode(kind):
    uc = new_vcpu()
    clock = InstructionClock(uc, kind)
    boot(uc, ALU, 3)
    uc.emu_start(ALU.entry, ALU.end)
    if kind == "python":
        blocks = clock._counts
    else:
        blocks = {(e.address, e.size): e.icount for e in clock._state.table if e.size}
    assert (ORIGIN, 14) in blocks                # the real-mode block: cli ... mov cr0, eax
    for (address, size), icount in blocks.items():
        mode = capstone.CS_MODE_16 if address < 0x8020 else capstone.CS_MODE_32
        code = bytes(uc.mem_read(address, size))
        assert len(list(capstone.Cs(capstone.CS_ARCH_X86, mode).disasm(code, address))) \
            == icount
    assert clock.misses == len(blocks)


@pytest.mark.parametrize("kind", KINDS)
def test_a_budget_stops_at_the_first_block_boundary_after_it(kind):
    uc, clock = booted(kind, ALU, 100)
    before = clock.retired
    for budget in (1, 3, 5, 7, 13):
        clock.arm(budget)
        uc.emu_start(eip(uc), ALU.end)
        ran = clock.retired - before
        assert clock.expired
        assert budget <= ran < budget + LOOP_BLOCK       # whole blocks only
        assert ran % LOOP_BLOCK == 0
        assert eip(uc) == ALU.entry                      # the next block did not start
        assert uc.reg_read(UC_X86_REG_ECX) == 100 - (clock.retired - BOOT_INSNS) // 5
        before = clock.retired


@pytest.mark.parametrize("kind", KINDS)
def test_the_block_whose_hook_stops_the_cpu_does_not_run_and_is_not_counted(kind):
    uc, clock = booted(kind, ALU, 10)
    clock.arm(LOOP_BLOCK)                      # exactly one loop block
    uc.emu_start(ALU.entry, ALU.end)
    assert clock.retired == BOOT_INSNS + 5
    assert clock.remaining == 0 and clock.expired
    assert uc.reg_read(UC_X86_REG_ECX) == 9    # one iteration, not two
    uc.emu_start(eip(uc), ALU.end)             # not re-armed: stops before any block
    assert clock.retired == BOOT_INSNS + 5 and uc.reg_read(UC_X86_REG_ECX) == 9


@pytest.mark.parametrize("kind", KINDS)
def test_expired_is_false_when_the_run_ends_before_the_budget(kind):
    uc, clock = booted(kind, ALU, 10)
    clock.arm(1000)
    uc.emu_start(ALU.entry, ALU.end)
    assert not clock.expired and eip(uc) == ALU.end
    assert clock.remaining == 1000 - 50


@pytest.mark.parametrize("kind", KINDS)
def test_disarmed_clock_never_stops_but_keeps_counting(kind):
    uc, clock = booted(kind, ALU, 1000)
    clock.arm(3)
    clock.disarm()
    uc.emu_start(ALU.entry, ALU.end)
    assert not clock.expired and clock.remaining > FOREVER - 10_000
    assert clock.retired == BOOT_INSNS + 5000


def stop_points(kind, workload, iterations, budget, **machine):
    uc, clock = booted(kind, workload, iterations, **machine)
    return run_sliced(uc, clock, workload.entry, workload.end, budget)


@pytest.mark.parametrize("kind", KINDS)
def test_real_mode_with_a_segment_base_counts_by_linear_address(kind):
    # CS = 0x0900: IP 0x100 is linear 0x9100. mov cx, 10 | L: inc cx | dec cx | dec cx |
    # jnz L | hlt. Blocks are keyed by linear address; the stops report IP.
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, RAM_SIZE)
    uc.mem_write(0x9100, bytes.fromhex("b9 0a 00 41 49 49 75 fb f4"))
    uc.reg_write(UC_X86_REG_CR0, 0x10)                  # real mode
    uc.reg_write(UC_X86_REG_CS, 0x900)
    clock = InstructionClock(uc, kind)
    stops = run_sliced(uc, clock, 0x100, 0x9108, budget=2)
    # mov + 1st iteration in one block, then one 4-instruction block per stop
    assert stops == [(1 + 4 * n, 0x103) for n in range(1, 10)] + [(1 + 4 * 10, 0x108)]


@pytest.mark.parametrize("budget", [1, 7, 100])
@pytest.mark.parametrize("name", ["alu", "xorshift"])
def test_native_and_python_stop_at_the_same_points_every_time(name, budget):
    workload = WORKLOADS[name]
    runs = [stop_points(kind, workload, 20, budget) for kind in ("python", "python")]
    if native.native_supported():
        runs += [stop_points("native", workload, 20, budget) for _ in range(2)]
    assert all(run == runs[0] for run in runs)
    assert runs[0][-1] == (BOOT_INSNS + workload.instructions(20), workload.end)


# --- with the other hooks a real backend installs -------------------------------------

PHYS = 0x100000                     # in UC_TLB_VIRTUAL mode the RAM sits here physically


def io_machine(kind, iterations, tlb_virtual):
    """The io workload with in/out, int and (optionally) TLB-fill hooks; every third
    ``out`` stops the run, as an I/O exit that makes an interrupt pending would."""
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    seen = {"out": [], "intr": 0, "fills": 0}

    def on_out(uc, port, size, value, _):
        seen["out"].append(value)
        if len(seen["out"]) % 3 == 0:
            uc.emu_stop()

    def on_intr(uc, number, _):
        assert number == 0x80
        seen["intr"] += 1

    def on_fill(uc, vaddr, access, entry, _):
        seen["fills"] += 1
        entry.paddr = PHYS + (vaddr & ~0xfff)
        entry.perms = UC_PROT_ALL
        return True

    uc.hook_add(UC_HOOK_INSN, on_out, None, 1, 0, UC_X86_INS_OUT)
    uc.hook_add(UC_HOOK_INSN, lambda uc, port, size, _: port & 0x7f, None, 1, 0,
                UC_X86_INS_IN)
    uc.hook_add(UC_HOOK_INTR, on_intr)
    if tlb_virtual:
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        uc.hook_add(UC_HOOK_TLB_FILL, on_fill)
    uc, clock = booted(kind, IO, iterations, uc=uc, ram_base=PHYS if tlb_virtual else 0)
    return uc, clock, seen


def run_io(kind, budget, tlb_virtual, iterations=30):
    uc, clock, seen = io_machine(kind, iterations, tlb_virtual)
    stops = []
    while eip(uc) != IO.end:
        clock.arm(budget)
        uc.emu_start(eip(uc), IO.end)
        stops.append((clock.retired, eip(uc), clock.expired))
    return stops, seen, uc.reg_read(UC_X86_REG_EBX)


@pytest.mark.parametrize("tlb_virtual", [False, True])
@pytest.mark.parametrize("budget", [4, 50])
def test_in_out_int_and_tlb_fill_hooks_leave_counts_exact_and_identical(budget, tlb_virtual):
    kinds = ["python", "python"] + (["native", "native"] if native.native_supported() else [])
    runs = [run_io(kind, budget, tlb_virtual) for kind in kinds]
    stops, seen, checksum = runs[0]
    assert all(run == runs[0] for run in runs)
    assert stops[-1][:2] == (BOOT_INSNS + IO.instructions(30), IO.end)
    assert seen["intr"] == 30 and len(seen["out"]) == 30
    assert seen["fills"] > 0 if tlb_virtual else seen["fills"] == 0
    io_stops = [s for s in stops if not s[2] and s[1] != IO.end]
    assert len(io_stops) > 0                     # some runs ended on an I/O stop


# --- code that changes ----------------------------------------------------------------

# 0x9000: mov ecx, 3 | top: inc eax | mov word [j], 0x9090 | j: jmp skip | inc ebx x2 |
# skip: dec ecx | jnz top | hlt. The store turns "jmp skip" into two nops *inside the
# block that is running*.
SMC = bytes.fromhex("b9 03 00 00 00  40  66 c7 05 0f 90 00 00 90 90  eb 02  43 43"
                    "  49  75 ef  f4")


@pytest.mark.parametrize("kind", KINDS)
def test_a_block_that_rewrites_itself_is_counted_the_same_way_every_time(kind):
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, RAM_SIZE)
    uc.mem_write(0x9000, SMC)
    clock = InstructionClock(uc, kind)
    uc.emu_start(0x9000, 0x9000 + len(SMC) - 1)
    assert (uc.reg_read(UC_X86_REG_EAX), uc.reg_read(UC_X86_REG_EBX)) == (3, 6)
    # Each pass, the store invalidates the running block: Unicorn re-runs the store
    # alone (a 1-instruction block) and continues with a new block at j. First pass:
    # [mov ecx .. jmp] 4 + [store] 1 + [nop nop inc inc dec jnz] 6; later passes:
    # [inc .. jnz] 8 + 1 + 6. The architectural count is 1 + 3 * 8 = 25: a block cut
    # short is counted in full (the documented rule), deterministically.
    assert clock.retired == (4 + 1 + 6) + 2 * (8 + 1 + 6) == 41


@pytest.mark.parametrize("kind", KINDS)
def test_new_code_at_the_same_address_is_a_new_block(kind):
    uc, clock = booted(kind, ALU, 10)
    uc.emu_start(ALU.entry, ALU.end)
    assert clock.retired == BOOT_INSNS + 50
    # a 2-instruction loop (dec ecx; jnz) in place of the 5-instruction one
    uc.mem_write(ALU.entry, bytes.fromhex("49 75 fd f4"))
    uc.reg_write(UC_X86_REG_ECX, 10)
    uc.emu_start(ALU.entry, ALU.entry + 3)
    assert clock.retired == BOOT_INSNS + 50 + 20


def colliding_addresses(count, start=0x11000):
    """``count`` addresses in RAM whose blocks land in the same table set."""
    wanted = native.set_index(start)
    found = [a for a in range(start, RAM_SIZE) if native.set_index(a) == wanted]
    assert len(found) >= count
    return found[:count]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ways_needed", [2, 3])
def test_blocks_that_share_a_table_set_are_still_counted_exactly(kind, ways_needed):
    # A loop through blocks that hash to one set: two fit (way 0 and way 1), a third
    # evicts one each time, so the machine code keeps asking Python (slow, still exact).
    addresses = colliding_addresses(ways_needed)
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, RAM_SIZE)
    for here, there in zip(addresses, addresses[1:]):       # inc eax; jmp there
        uc.mem_write(here, b"\x40\xe9" + (there - here - 6).to_bytes(4, "little", signed=True))
    last = addresses[-1]                                    # dec ecx; jnz first; hlt
    uc.mem_write(last, b"\x49\x0f\x85" + (addresses[0] - last - 7).to_bytes(4, "little",
                                                                          signed=True) + b"\xf4")
    uc.reg_write(UC_X86_REG_ECX, 50)
    clock = InstructionClock(uc, kind)
    uc.emu_start(addresses[0], last + 7)
    assert clock.retired == 50 * 2 * ways_needed
    if kind == "native":
        assert clock.misses == ways_needed if ways_needed == 2 else clock.misses > 50


# --- errors and set-up ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_slow_path_stops_before_the_block_and_raises_from_emu_start(kind):
    uc = new_vcpu()
    clock = InstructionClock(uc, kind)
    boot(uc, ALU, 10)
    clock.block_icount = lambda address, size: (_ for _ in ()).throw(RuntimeError("boom"))
    before = clock.retired
    with pytest.raises(RuntimeError, match="boom"):
        uc.emu_start(ALU.entry, ALU.end)
    assert clock.retired == before
    assert eip(uc) == ALU.entry and uc.reg_read(UC_X86_REG_ECX) == 10


def test_budget_must_be_positive_and_kind_known():
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    clock = InstructionClock(uc, "python")
    with pytest.raises(ClockError, match="at least 1"):
        clock.arm(0)
    with pytest.raises(SandboxError, match="unknown instruction clock kind"):
        InstructionClock(uc, "fast")


def test_the_host_picks_the_kind(monkeypatch):
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    expected = "native" if native.native_supported() else "python"
    assert InstructionClock(uc).kind == expected
    monkeypatch.setattr(native, "native_supported", lambda: False)
    assert isinstance(InstructionClock(Uc(UC_ARCH_X86, UC_MODE_32)), PythonInstructionClock)
    with pytest.raises(ClockError, match="x86-64 Linux"):
        InstructionClock(uc, "native")


@pytest.mark.parametrize("kind", KINDS)
def test_close_removes_the_hook(kind):
    uc, clock = booted(kind, ALU, 10)
    counted = clock.retired
    clock.close()
    uc.emu_start(ALU.entry, ALU.end)
    assert clock.retired == counted and eip(uc) == ALU.end


@pytest.mark.parametrize("kind", KINDS)
def test_an_until_inside_a_block_counts_unicorns_stop_stub(kind):
    # Unicorn ends a block early at emu_start's ``until`` and counts the stub that
    # stops there as an instruction. A backend should pass an ``until`` its guest never
    # executes; this pins the behaviour so a Unicorn upgrade that changes it is noticed.
    uc, clock = booted(kind, ALU, 1)
    uc.emu_start(ALU.entry, ALU.entry + 4)       # add, xor run; stop before rol
    assert clock.retired == BOOT_INSNS + 2 + 1


@pytest.mark.skipif(not native.native_supported(), reason="x86-64 Linux only")
def test_dropping_a_native_clock_removes_its_hook_first():
    import gc
    uc, clock = booted("native", ALU, 10)
    del clock
    gc.collect()                                # its state memory is gone now
    uc.emu_start(ALU.entry, ALU.end)            # would call the hook with freed state
    assert eip(uc) == ALU.end


@pytest.mark.parametrize("kind", KINDS)
def test_two_vcpus_on_two_threads_keep_separate_exact_clocks(kind):
    import threading
    expected = stop_points(kind, XORSHIFT, 30, 500)
    results = {}

    def vcpu(index):
        results[index] = stop_points(kind, XORSHIFT, 30, 500)

    threads = [threading.Thread(target=vcpu, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {0: expected, 1: expected}
