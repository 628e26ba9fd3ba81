"""cpuhog's burn loop, measured three ways on the same guest instructions.

1. deterministic: the full hypervisor, guest time from retired instructions;
2. fast: the full hypervisor with wall-clock slices;
3. raw: a bare Unicorn instance with the guest's memory and registers copied from
   the hypervisor at the same point, no hooks, running until cpuhog calls kprintf.

The work between two reports is a fixed number of instructions (counted exactly in
deterministic mode), so MIPS = instructions / wall seconds for each.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_X86, UC_MODE_32, UC_PROT_ALL, Uc
from unicorn import x86_const as X

from sandbox.api import Machine

IMAGES = Path(__file__).resolve().parent.parent.parent / "guests" / "images"
KERNEL = IMAGES / "cpuhog.elf"


@dataclass
class Snapshot:
    regs: dict[str, int]
    gdtr: tuple[int, int, int, int]
    ram: bytes


def _symbol(name: str) -> int:
    with open(KERNEL, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
    return sym[0]["st_value"]


def _run_to_report(m: Machine, n: int, timeout: float = 120) -> None:
    vm = m.vm()
    needle = f"cpuhog: {n} ".encode()
    m.run(wall_timeout_s=timeout, should_stop=lambda: needle in vm.console)
    if needle not in vm.console:
        raise RuntimeError(f"cpuhog did not reach report {n}: {vm.console[-200:]!r}")


def hypervisor_mips(burn: int, deterministic: bool) -> tuple[float, int, Snapshot | None]:
    """(MIPS, instructions between reports 1 and 2, snapshot at report 1)."""
    m = Machine.from_image(kernel=KERNEL, cmdline=f"burn={burn} reports=3", deterministic=deterministic)
    m.power_on()
    _run_to_report(m, 1)
    vm = m.vm()
    cpu = vm.vcpus[0]
    snap = None
    if deterministic:
        uc = cpu.backend.uc
        snap = Snapshot(cpu.backend.get_regs(), uc.reg_read(X.UC_X86_REG_GDTR),
                        vm.memory.read(0, vm.memory.size))
    insns0 = cpu.stats.instructions
    t0 = time.perf_counter()
    _run_to_report(m, 2)
    wall = time.perf_counter() - t0
    insns = cpu.stats.instructions - insns0
    m.close()
    return (insns / wall / 1e6 if deterministic else 0.0), insns, snap


def raw_mips(snap: Snapshot, instructions: int) -> float:
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, len(snap.ram), UC_PROT_ALL)
    uc.mem_write(0, snap.ram)
    uc.reg_write(X.UC_X86_REG_GDTR, snap.gdtr)
    uc.reg_write(X.UC_X86_REG_CR0, snap.regs["cr0"])
    for seg in ("ss", "ds", "es", "fs", "gs"):
        uc.reg_write(getattr(X, f"UC_X86_REG_{seg.upper()}"), snap.regs[seg])
    uc.reg_write(X.UC_X86_REG_CS, snap.regs["cs"])
    for reg in ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eflags"):
        uc.reg_write(getattr(X, f"UC_X86_REG_{reg.upper()}"), snap.regs[reg])
    until = _symbol("kprintf")
    t0 = time.perf_counter()
    uc.emu_start(snap.regs["eip"], until)
    wall = time.perf_counter() - t0
    if uc.reg_read(X.UC_X86_REG_EIP) != until:
        raise RuntimeError("the raw engine did not reach cpuhog's next report")
    return instructions / wall / 1e6


def measure(burn: int = 4_000_000) -> dict[str, float]:
    det_mips, insns, snap = hypervisor_mips(burn, deterministic=True)
    raw = raw_mips(snap, insns)
    m = Machine.from_image(kernel=KERNEL, cmdline=f"burn={burn} reports=3", deterministic=False)
    m.power_on()
    _run_to_report(m, 1)
    t0 = time.perf_counter()
    _run_to_report(m, 2)
    fast_mips = insns / (time.perf_counter() - t0) / 1e6
    m.close()
    raw2 = raw_mips(snap, insns)     # measured again after, so drift shows in the ratio less
    raw = (raw + raw2) / 2
    return {
        "cpuhog_instructions_per_report": insns,
        "raw_unicorn_mips": round(raw, 1),
        "fast_mips": round(fast_mips, 1),
        "deterministic_mips": round(det_mips, 1),
        "unicorn_efficiency": round(fast_mips / raw, 3),
        "deterministic_efficiency": round(det_mips / raw, 3),
    }
