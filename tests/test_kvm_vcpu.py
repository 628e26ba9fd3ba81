"""The KVM backend runs real guest code on /dev/kvm: exits, interrupts, copy-on-write.

Each test builds a tiny VM (1 MiB of guest RAM) with a fake host that records what
the guest does on its I/O ports. Skipped where /dev/kvm does not open.
"""
from __future__ import annotations

import threading
import time

import pytest

from asm import assemble, needs_as
from sandbox.backends.base import EFLAGS_IF, FlatProtectedMode
from sandbox.backends.kvm.errors import KvmError
from sandbox.backends.kvm.probe import probe
from sandbox.host.ram import PAGE, FramePool
from sandbox.vm.descriptors import encode_segment
from sandbox.vm.exits import BudgetExit, CrashExit, HltExit, IoExit, MmioExit, StepExit, StopExit
from sandbox.vm.memory import NOT_PRESENT, GuestMemory

KVM = probe()
pytestmark = [pytest.mark.kvm, needs_as,
              pytest.mark.skipif(not KVM.usable, reason=f"KVM unusable: {KVM.problem()}")]

if KVM.usable:
    from sandbox.backends.kvm.vcpu import KvmVCpu


class FakeHost:
    """Guest memory with demand allocation and copy-on-write, and ports that record."""
    vm_name = "test"

    def __init__(self, pool: FramePool | None = None) -> None:
        self.pool = pool or FramePool(512)
        self.memory = GuestMemory("test", 1 << 20, self.pool, self._fault)
        self.outputs: list[tuple[int, int]] = []      # (port, value) of every OUT
        self.inputs: dict[int, list[int]] = {}          # port -> values IN will return
        self.mmio: list[MmioExit] = []
        self.stop_ports: set[int] = set()               # an OUT here makes run() stop
        self.events: list[str] = []
        self.swapped: dict[int, bytes] = {}             # gfn -> contents, while "swapped out"

    def _fault(self, memory: GuestMemory, gfn: int, write: bool) -> int:
        hfn = memory.table[gfn]
        if hfn == NOT_PRESENT:
            hfn = self.pool.alloc("test")
            self.pool.frame(hfn)[:] = self.swapped.pop(gfn, bytes(PAGE))
        elif write and not memory.writable[gfn]:           # break the share: a private copy
            copy = self.pool.alloc("test")
            self.pool.frame(copy)[:] = self.pool.frame(hfn)
            self.pool.release(hfn)
            hfn = copy
            memory.generation += 1
        memory.table[gfn], memory.writable[gfn] = hfn, True
        return hfn

    def share(self, gfn: int) -> int:
        """Make ``gfn`` a shared page, as page sharing would: read-only, two references."""
        hfn = self.memory.table[gfn]
        self.pool.refcount[hfn] += 1
        self.memory.writable[gfn] = False
        self.memory.generation += 1
        return hfn

    def handle_io(self, ex: IoExit, vcpu) -> bool:
        if ex.write:
            self.outputs.append((ex.port, ex.value))
        else:
            queue = self.inputs.get(ex.port, [])
            ex.value = queue.pop(0) if queue else 0xFF
        return ex.port in self.stop_ports

    def handle_mmio(self, ex: MmioExit, vcpu) -> bool:
        self.mmio.append(ex)
        if not ex.write:
            ex.value = 0x1234
        return False

    def publish(self, kind: str, **data) -> None:
        self.events.append(kind)


@pytest.fixture
def host():
    return FakeHost()


@pytest.fixture
def cpu(host):
    vcpu = KvmVCpu(host, 0)
    yield vcpu
    vcpu.close()


def load16(host, cpu, source: str, at: int = 0x7C00) -> None:
    host.memory.write(at, assemble(".code16\n" + source, at))
    cpu.set_real_mode(0, at)
    cpu.set_regs(esp=0x7000)


FLAT_GDT = 0x1000


def load32(host, cpu, source: str, at: int = 0x2000) -> None:
    """Write a flat GDT (code 0x08, data 0x10) and enter protected mode at ``source``."""
    gdt = bytes(8) + encode_segment(0, 0xFFFFF, 0x9A, 0xC) + encode_segment(0, 0xFFFFF, 0x92, 0xC)
    host.memory.write(FLAT_GDT, gdt)
    host.memory.write(at, assemble(".code32\n" + source, at))
    cpu.set_regs(esp=0x9000)
    cpu.enter_flat_protected_mode(FlatProtectedMode(FLAT_GDT, len(gdt) - 1, 0x08, 0x10), at)


# --- real mode ------------------------------------------------------------------------
def test_fresh_vm_needs_few_memory_slots(cpu):
    assert len(cpu.vm.slots) <= 2
    assert all(hfn != NOT_PRESENT for hfn in cpu.memory.table)    # all RAM faulted in up front


def test_real_mode_out_then_hlt(host, cpu):
    load16(host, cpu, "mov $0x3f8, %dx; mov $'A', %al; out %al, %dx; hlt")
    assert cpu.run(None, None) == HltExit(interrupts_enabled=False)
    assert host.outputs == [(0x3F8, ord("A"))]
    assert cpu.get_regs()["eip"] == 0x7C00 + 7           # just past the hlt


def test_real_mode_segments_have_base_selector_times_16(cpu):
    cpu.set_real_mode(0x1234, 0x10)
    cpu.set_regs(ds=0x2000, eax=0xDEADBEEF)
    regs = cpu.get_regs()
    assert (regs["cs"], regs["eip"], regs["ds"], regs["eax"]) == (0x1234, 0x10, 0x2000, 0xDEADBEEF)
    sregs = cpu._sregs()
    assert (sregs.cs.base, sregs.ds.base) == (0x12340, 0x20000)


def test_unknown_register_is_a_one_line_error(cpu):
    with pytest.raises(KvmError, match="unknown register 'rax'"):
        cpu.set_regs(rax=1)


def test_in_returns_the_value_the_device_gives(host, cpu):
    host.inputs[0x60] = [0x5A]
    load16(host, cpu, "in $0x60, %al; out %al, $0x10; cli; hlt")
    assert isinstance(cpu.run(None, None), HltExit)
    assert host.outputs == [(0x10, 0x5A)]


def test_string_io_is_one_exit_per_element(host, cpu):
    host.inputs[0x61] = [1, 2, 3]
    load16(host, cpu, """
        mov $msg, %si; mov $5, %cx; mov $0x3f8, %dx; rep outsb
        mov $0x500, %di; mov $3, %cx; mov $0x61, %dx; rep insb
        cli; hlt
        msg: .ascii "hello"
    """)
    assert isinstance(cpu.run(None, None), HltExit)
    assert bytes(v for _p, v in host.outputs) == b"hello"
    assert host.memory.read(0x500, 3) == bytes([1, 2, 3])


def test_eip_during_an_out_exit_is_the_out_instruction(host, cpu):
    """As VT-x/AMD-V report it, and as the BIOS's trap stubs rely on."""
    seen = []

    def handle_io(ex, vcpu):
        seen.append(vcpu.get_regs()["eip"])
        return False
    host.handle_io = handle_io
    load16(host, cpu, "nop; out %al, $0xb2; mov $0x3f8, %dx; out %al, %dx; cli; hlt")
    assert isinstance(cpu.run(None, None), HltExit)
    assert seen == [0x7C01, 0x7C06]
    seen.clear()
    load32(host, cpu, "nop; out %eax, $0x10; mov $0x3f8, %dx; out %ax, %dx; hlt")
    assert isinstance(cpu.run(None, None), HltExit)
    assert seen == [0x2001, 0x2007]                 # the second one is 66 ef


def test_step_runs_one_instruction(host, cpu):
    load16(host, cpu, "mov $1, %al; out %al, $0x10; mov $2, %bl; cli; hlt")
    assert cpu.step() == StepExit(0x7C02)                   # linear address of the next one
    assert cpu.step() == StepExit(0x7C04) and host.outputs == [(0x10, 1)]
    assert cpu.step() == StepExit(0x7C06) and cpu.get_regs()["ebx"] & 0xFF == 2
    assert cpu.read_linear(0x7C00, 2) == bytes([0xB0, 0x01])
    cpu.step()
    assert cpu.step() == HltExit(interrupts_enabled=False)


# --- protected mode ---------------------------------------------------------------------
def test_flat_protected_mode_in_out_and_hlt_with_interrupts_on(host, cpu):
    host.inputs[0x60] = [0xAB]
    load32(host, cpu, """
        movl $0x12345678, %eax; out %eax, $0x10
        mov $0x60, %dx; in %dx, %al; out %al, $0x11
        sti; hlt
    """)
    regs = cpu.get_regs()
    assert regs["cr0"] & 1 and (regs["cs"], regs["ds"], regs["ss"]) == (0x08, 0x10, 0x10)
    assert cpu.run(None, None) == HltExit(interrupts_enabled=True)
    assert host.outputs == [(0x10, 0x12345678), (0x11, 0xAB)]


def test_mmio_outside_ram_goes_to_the_device_bus(host, cpu):
    load32(host, cpu, "movl $0x11223344, 0xe0000000; mov 0xe0000004, %eax; out %eax, $0x10; hlt")
    assert isinstance(cpu.run(None, None), HltExit)
    assert [(e.addr, e.size, e.write, e.value) for e in host.mmio] == [
        (0xE0000000, 4, True, 0x11223344), (0xE0000004, 4, False, 0x1234)]
    assert host.outputs == [(0x10, 0x1234)]


def test_triple_fault_is_a_crash(host, cpu):
    # No IDT worth the name: #UD cannot be delivered, nor the #DF after it.
    load32(host, cpu, "ud2")
    assert cpu.run(None, None) == CrashExit("triple fault")


# --- interrupts -----------------------------------------------------------------------------


def install_handler(host, vector: int = 0x20) -> None:
    host.memory.write(0x600, assemble(".code16\nmov $0x99, %al; out %al, $0x12; iret", 0x600))
    host.memory.write_u16(vector * 4, 0x600)      # IVT entry: offset
    host.memory.write_u16(vector * 4 + 2, 0)      # segment


def test_kvm_interrupt_is_delivered_through_the_real_mode_ivt(host, cpu):
    install_handler(host)
    load16(host, cpu, "sti; hlt; mov $0x55, %al; out %al, $0x13; cli; hlt")
    assert cpu.run(None, None) == HltExit(interrupts_enabled=True)
    assert cpu.can_take_interrupt()
    cpu.interrupt(0x20)
    assert cpu.run(None, None) == HltExit(interrupts_enabled=False)
    assert host.outputs == [(0x12, 0x99), (0x13, 0x55)]    # handler, then back after the hlt


def test_interrupt_window_exit_when_the_guest_enables_interrupts(host, cpu):
    install_handler(host)
    host.stop_ports = {0x14, 0x12}
    load16(host, cpu, "cli; out %al, $0x14; sti; nop; spin: jmp spin")
    assert isinstance(cpu.run(None, None), StopExit)        # the device asked to stop
    assert not cpu.can_take_interrupt()                     # IF is clear: asks for a window
    assert isinstance(cpu.run(None, None), StopExit)        # ... which opens after sti; nop
    assert cpu.exit_counts["KVM_EXIT_IRQ_WINDOW_OPEN"] == 1
    assert cpu.can_take_interrupt() and cpu.get_regs()["eflags"] & EFLAGS_IF
    cpu.interrupt(0x20)
    assert isinstance(cpu.run(None, None), StopExit)
    assert host.outputs[-1] == (0x12, 0x99)


# --- stopping ----------------------------------------------------------------------------------
def test_request_stop_from_another_thread(host, cpu):
    load16(host, cpu, "spin: jmp spin")
    timer = threading.Timer(0.05, cpu.request_stop)
    timer.start()
    started = time.monotonic()
    assert isinstance(cpu.run(None, None), StopExit)
    assert time.monotonic() - started < 2
    timer.join()


def test_wall_clock_slice_ends_with_budget_exit(host, cpu):
    load16(host, cpu, "spin: jmp spin")
    started = time.monotonic()
    assert isinstance(cpu.run(10**9, 20_000), BudgetExit)   # the budget is ignored: wall clock
    assert 0.015 < time.monotonic() - started < 1


def test_two_vcpu_threads_get_their_own_slices():
    results = {}

    def spin(name: str, slice_us: int) -> None:
        h = FakeHost()
        vcpu = KvmVCpu(h, 0)
        load16(h, vcpu, "spin: jmp spin")
        started = time.monotonic()
        results[name] = (vcpu.run(None, slice_us), time.monotonic() - started)
        vcpu.close()

    # vCPUs are created on the main thread's behalf here; the kick handler is installed.
    threads = [threading.Thread(target=spin, args=("short", 20_000)),
               threading.Thread(target=spin, args=("long", 150_000))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert isinstance(results["short"][0], BudgetExit) and isinstance(results["long"][0], BudgetExit)
    assert results["short"][1] < results["long"][1]


def test_vcpus_of_one_vm_share_its_memory_slots(host, cpu):
    second = KvmVCpu(host, 1)
    try:
        assert second.vm is cpu.vm
    finally:
        second.close()
    assert not cpu.vm.closed


# --- memory -----------------------------------------------------------------------------------
def test_write_to_a_shared_page_gets_a_private_copy(host, cpu):
    gfn = 5
    host.memory.write(gfn * PAGE, b"\x11")
    original = host.share(gfn)
    cpu.mappings_changed()                                  # now a read-only slot
    load16(host, cpu, """
        mov 0x5000, %al; out %al, $0x10
        movb $0x22, 0x5000; mov 0x5000, %al; out %al, $0x10
        movb $0x33, 0x5001
        cli; hlt
    """)
    assert isinstance(cpu.run(None, None), HltExit)
    assert host.outputs == [(0x10, 0x11), (0x10, 0x22)]
    assert host.memory.table[gfn] != original and host.memory.writable[gfn]
    assert host.memory.read(gfn * PAGE, 2) == b"\x22\x33"
    assert bytes(host.pool.frame(original)[:2]) == b"\x11\x00"     # the shared frame is untouched
    assert cpu.ram_faults == 1                              # only the first write exited


def swap_out(host, gfn: int) -> None:
    """What swapping does: the guest frame loses its host frame; its contents wait on disk."""
    hfn = host.memory.table[gfn]
    host.swapped[gfn] = bytes(host.pool.frame(hfn))
    host.pool.release(hfn)
    host.memory.table[gfn] = NOT_PRESENT
    host.memory.generation += 1


def test_data_in_a_swapped_out_page_is_faulted_back_in(host, cpu):
    host.memory.write(0x6000, b"\x07")
    load16(host, cpu, "mov 0x6000, %al; out %al, $0x10; cli; hlt")
    swap_out(host, 6)
    assert isinstance(cpu.run(None, None), HltExit)
    assert host.outputs == [(0x10, 7)]
    assert host.memory.table[6] != NOT_PRESENT and cpu.ram_faults == 1


def test_code_in_a_swapped_out_page_is_faulted_back_in(host, cpu):
    """KVM cannot fetch instructions through an MMIO exit: it reports an emulation
    failure, and the backend brings every missing page back before retrying."""
    load16(host, cpu, "mov $3, %al; out %al, $0x10; cli; hlt", at=0x3000)
    swap_out(host, 3)
    assert isinstance(cpu.run(None, None), HltExit)
    assert host.outputs == [(0x10, 3)]


def test_dirty_log_reports_written_pages(host, cpu):
    assert len(cpu.get_dirty_log()) == host.memory.frames   # first call: everything
    load16(host, cpu, "movb $1, 0x6000; cli; hlt")
    cpu.get_dirty_log()                                      # forget the loader's writes
    assert isinstance(cpu.run(None, None), HltExit)
    assert 6 in cpu.get_dirty_log()
    assert 6 not in cpu.get_dirty_log()


# --- the figure --------------------------------------------------------------------------------
def test_measure_port_io_round_trip(host, cpu, capsys):
    """Prints (does not assert) the cost of one OUT exit, bare KVM_RUN and through run()."""
    from sandbox.backends.kvm import abi
    n = 2000
    load32(host, cpu, "loop: out %al, $0x10; jmp loop")
    started = time.perf_counter()
    for _ in range(n):
        abi.ioctl(cpu.fd, abi.KVM_RUN)
    bare = (time.perf_counter() - started) / n * 1e6
    count = 0

    def handle_io(ex, vcpu):
        nonlocal count
        count += 1
        return count >= n
    host.handle_io = handle_io
    started = time.perf_counter()
    cpu.run(None, None)
    full = (time.perf_counter() - started) / n * 1e6
    with capsys.disabled():
        print(f"\n[kvm {KVM.mode}] ring-0 OUT round trip: bare KVM_RUN {bare:.1f} us, "
              f"through run()+handle_io {full:.1f} us")
