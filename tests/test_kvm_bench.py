"""The KVM benchmark measures what it says (small sizes here; ``sandbox bench --backend kvm``
runs the real ones)."""
from __future__ import annotations

import capstone
import pytest

from sandbox.backends.kvm import kvm_bench
from sandbox.backends.kvm.probe import probe

KVM = probe()
needs_kvm = pytest.mark.skipif(not KVM.usable, reason=f"KVM unusable: {KVM.problem()}")


def disassemble(code: bytes) -> list[str]:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    return [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(code, 0)]


def test_the_vm_and_the_host_run_the_same_loop():
    vm, native = (disassemble(kvm_bench.loop_code(1000, tail)) for tail in (kvm_bench.VM_TAIL, kvm_bench.NATIVE_TAIL))
    loop = ["mov rcx, 0x3e8", "add rax, rcx", "xor rdx, rax", "dec rcx", "jne 7"]
    assert vm == loop + ["out 0x10, al", "jmp 0"]           # exits to the hypervisor, then again
    assert native == loop + ["ret"]


def test_the_native_loop_runs_in_this_process():
    loop = kvm_bench.NativeLoop(100_000)
    try:
        assert 0 < loop.seconds() < 1
    finally:
        loop.close()


@needs_kvm
def test_the_long_mode_guest_runs_the_loop_in_ring_3_and_exits_at_its_out():
    loop = kvm_bench.VmLoop(100_000)
    try:
        assert 0 < loop.seconds() < 1
        sregs = loop.vcpu._sregs()
        assert sregs.cs.l == 1 and sregs.cs.dpl == 3 and sregs.efer & 0x400   # 64-bit ring 3, long mode
    finally:
        loop.close()


@needs_kvm
def test_exit_round_trip_reports_both_costs():
    figures = kvm_bench.exit_round_trip(rounds=1, slice_us=5_000, bare_exits=200)
    assert figures["kvm_exit_us"] > 0 and figures["kvm_bare_exit_us"] > 0
    assert figures["kvm_exit_vs_bare"] == pytest.approx(figures["kvm_exit_us"] / figures["kvm_bare_exit_us"], rel=0.05)


@needs_kvm
def test_emulated_speed_is_measured():
    assert kvm_bench.emulated_mips(seconds=0.01) > 0
