"""What does scheduling cost, and do two physical CPUs give two CPUs' worth?

``measure()`` (``sandbox bench --only scheduler``, or ``python -m sandbox.hypervisor.sched_bench``):

* ``scheduler_overhead``: eight one-vCPU VMs run the same compute loop on two pCPUs in
  fast mode, under each policy. Their aggregate guest MIPS, divided by the aggregate
  MIPS of two bare Unicorn instances running the loop at once on two host threads
  with no hooks at all (the ceiling). Goal: >= 0.85. The lowest policy is the figure.
  ``scheduler_overhead_5ms_tick`` repeats round robin with a 5 ms tick
  (``quantum_ms = 5``): the cost is mostly per slice.
* ``parallel_speedup``: the same eight VMs on two pCPUs versus one (round robin).
  Goal: >= 1.8 on a 2-core machine. ``raw_parallel_speedup`` is what two bare Unicorn
  threads achieve on this host at this moment: the real ceiling (other processes on
  the machine lower it).

MIPS are counted the same way everywhere: the loop increments EBP once per
iteration of 18 instructions (a xorshift32 step, a load, a multiply, a store).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_MODE_32, Uc
from unicorn.x86_const import UC_X86_REG_CR0, UC_X86_REG_CS, UC_X86_REG_EBP, UC_X86_REG_SS

from sandbox.config.model import HostConfig, MachineConfig, VmConfig

INSNS_PER_ITERATION = 18
VMS = 8
POLICIES = ("round_robin", "proportional", "credit")

# The guest: a boot sector (loaded at 0x7C00) that enters flat 32-bit protected mode
# and loops forever. (offset, bytes, assembly)
PROGRAM = [
    (0x00, "fa", "cli"),
    (0x01, "31 c0", "xor ax, ax"),
    (0x03, "8e d8", "mov ds, ax"),
    (0x05, "8e d0", "mov ss, ax"),
    (0x07, "66 0f 01 16 80 7c", "lgdt [0x7c80]"),
    (0x0d, "0f 20 c0", "mov eax, cr0"),
    (0x10, "0c 01", "or al, 1"),
    (0x12, "0f 22 c0", "mov cr0, eax"),
    (0x15, "66 ea 1d 7c 00 00 08 00", "jmp dword 0x08:0x7c1d"),
    (0x1d, "66 b8 10 00", "mov ax, 0x10"),
    (0x21, "8e d8", "mov ds, ax"),
    (0x23, "8e c0", "mov es, ax"),
    (0x25, "8e d0", "mov ss, ax"),
    (0x27, "be 00 00 02 00", "mov esi, 0x20000       ; a table of 1024 dwords"),
    (0x2c, "b8 78 56 34 12", "mov eax, 0x12345678    ; xorshift state"),
    (0x31, "31 ed", "xor ebp, ebp            ; iterations"),
    (0x33, "89 c2", "loop: mov edx, eax"),
    (0x35, "c1 e2 0d", "shl edx, 13"),
    (0x38, "31 d0", "xor eax, edx"),
    (0x3a, "89 c2", "mov edx, eax"),
    (0x3c, "c1 ea 11", "shr edx, 17"),
    (0x3f, "31 d0", "xor eax, edx"),
    (0x41, "89 c2", "mov edx, eax"),
    (0x43, "c1 e2 05", "shl edx, 5"),
    (0x46, "31 d0", "xor eax, edx"),
    (0x48, "89 c3", "mov ebx, eax"),
    (0x4a, "81 e3 ff 03 00 00", "and ebx, 1023"),
    (0x50, "69 0c 9e 6d 4e c6 41", "imul ecx, [esi + ebx*4], 1103515245"),
    (0x57, "81 c1 39 30 00 00", "add ecx, 12345"),
    (0x5d, "89 0c 9e", "mov [esi + ebx*4], ecx"),
    (0x60, "d1 c7", "rol edi, 1"),
    (0x62, "31 cf", "xor edi, ecx"),
    (0x64, "45", "inc ebp"),
    (0x65, "eb cc", "jmp loop"),
    (0x68, "00 00 00 00 00 00 00 00", "GDT: null descriptor"),
    (0x70, "ff ff 00 00 00 9a cf 00", "0x08: flat 32-bit code"),
    (0x78, "ff ff 00 00 00 92 cf 00", "0x10: flat data"),
    (0x80, "17 00 68 7c 00 00", "GDTR: limit 23, base 0x7c68"),
]


def boot_sector() -> bytes:
    sector = bytearray(512)
    for offset, code, _ in PROGRAM:
        raw = bytes.fromhex(code)
        sector[offset:offset + len(raw)] = raw
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


# --- the ceiling: bare Unicorn, no hooks ---------------------------------------------------------
def _bare_engine() -> Uc:
    uc = Uc(UC_ARCH_X86, UC_MODE_32)
    uc.mem_map(0, 0x100000)
    uc.mem_write(0x7C00, boot_sector())
    uc.reg_write(UC_X86_REG_CR0, 0x10)         # real mode, as the BIOS leaves it
    uc.reg_write(UC_X86_REG_CS, 0)
    uc.reg_write(UC_X86_REG_SS, 0)
    return uc


def raw_mips(threads: int, seconds: float) -> float:
    """Bare engines on ``threads`` host threads at once, stopped from another thread
    (an ``emu_start`` timeout would add Unicorn's polling thread)."""
    engines = [_bare_engine() for _ in range(threads)]
    finished = threading.Event()
    workers = [threading.Thread(target=uc.emu_start, args=(0x7C00, 0)) for uc in engines]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    finished.wait(seconds)
    while any(w.is_alive() for w in workers):
        for uc in engines:
            uc.emu_stop()
        for w in workers:
            w.join(0.01)
    wall = time.perf_counter() - t0
    return sum(uc.reg_read(UC_X86_REG_EBP) for uc in engines) * INSNS_PER_ITERATION / wall / 1e6


# --- the hypervisor ---------------------------------------------------------------------------------
def hypervisor_mips(image: Path, policy: str, cpus: int, seconds: float, fast: bool = True,
                    quantum_ms: float = 1.0) -> dict:
    from sandbox.api import Machine   # noqa: PLC0415 (keep `import sched_bench` light)
    vms = [VmConfig(name=f"hog{i}", memory_mib=2, disk=image, readonly=True) for i in range(VMS)]
    config = MachineConfig(HostConfig(cpus=cpus, deterministic=not fast, scheduler=policy,
                                      quantum_ms=quantum_ms), vms)
    with Machine(config) as m:
        m.power_on()
        m.run_for(50_000_000)                   # boot and warm the translation caches
        before = {vm.name: vm.vcpus[0].backend.get_regs()["ebp"] for vm in m.vms.values()}
        t0, g0 = time.perf_counter(), m.now_ns
        m.run_for(int(seconds * 1e9))
        wall, guest = time.perf_counter() - t0, (m.now_ns - g0) / 1e9
        iterations = {vm.name: vm.vcpus[0].backend.get_regs()["ebp"] - before[vm.name] for vm in m.vms.values()}
        decisions = m.hypervisor.scheduler.decisions
    total = sum(iterations.values()) * INSNS_PER_ITERATION
    return {"mips": total / wall / 1e6, "guest_mips": total / guest / 1e6, "decisions": decisions}


def measure(seconds: float = 0.3, repeats: int = 5) -> dict:
    """Each configuration runs ``repeats`` times, interleaved with the others, and keeps
    its best run: other processes on the host only ever make a run slower."""
    runs: dict[str, list[float]] = {}

    def keep(name: str, mips: float) -> None:
        runs.setdefault(name, []).append(mips)

    with tempfile.TemporaryDirectory() as d:
        image = Path(d) / "hog.img"
        image.write_bytes(boot_sector())
        for _ in range(repeats):
            keep("raw1", raw_mips(1, seconds))
            keep("raw2", raw_mips(2, seconds))
            for p in POLICIES:
                keep(p, hypervisor_mips(image, p, 2, seconds)["mips"])
            keep("one_pcpu", hypervisor_mips(image, "round_robin", 1, seconds)["mips"])
            keep("tick_5ms", hypervisor_mips(image, "round_robin", 2, seconds, quantum_ms=5.0)["mips"])
        det = hypervisor_mips(image, "round_robin", 2, seconds / 2, fast=False)
    best = {k: max(v) for k, v in runs.items()}
    median = {k: statistics.median(v) for k, v in runs.items()}
    overhead = {p: best[p] / best["raw2"] for p in POLICIES}
    out = {
        "scheduler_overhead": round(min(overhead.values()), 3),
        "scheduler_overhead_goal": 0.85,
        "scheduler_overhead_by_policy": {p: round(v, 3) for p, v in overhead.items()},
        "scheduler_overhead_median": round(min(median[p] for p in POLICIES) / median["raw2"], 3),
        "parallel_speedup": round(best["round_robin"] / best["one_pcpu"], 3),
        "parallel_speedup_goal": 1.8,
        "parallel_speedup_median": round(median["round_robin"] / median["one_pcpu"], 3),
        "raw_parallel_speedup": round(best["raw2"] / best["raw1"], 3),
        "raw_mips_1_thread": round(best["raw1"], 1),
        "raw_mips_2_threads": round(best["raw2"], 1),
        "hypervisor_mips_2_pcpus": {p: round(best[p], 1) for p in POLICIES},
        "hypervisor_mips_1_pcpu": round(best["one_pcpu"], 1),
        "one_pcpu_over_raw_1_thread": round(best["one_pcpu"] / best["raw1"], 3),
        "scheduler_overhead_5ms_tick": round(best["tick_5ms"] / best["raw2"], 3),
        "deterministic_mode_wall_mips_2_pcpus": round(det["mips"], 1),
        "quantum_ms": 1.0,
        "repeats": repeats,
        "seconds_per_run": seconds,
    }
    notes = []
    if out["scheduler_overhead"] < 0.85:
        notes.append("scheduler_overhead below goal: each 1 ms slice costs ~80-100 us of Python "
                     "(decision, accounting, the vCPU's run loop) plus the instruction-counting hook; "
                     "compare scheduler_overhead_5ms_tick")
    if out["parallel_speedup"] < 1.8:
        notes.append(f"parallel_speedup below goal; two bare Unicorn threads got "
                     f"{out['raw_parallel_speedup']}x on this host at the same time")
    out["notes"] = "; ".join(notes) or "goals met"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--seconds", type=float, default=0.3)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(measure(args.seconds, args.repeats), indent=2))


if __name__ == "__main__":
    main()
