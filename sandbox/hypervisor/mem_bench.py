"""Memory virtualization benchmark: ``measure() -> dict`` (wired into ``sandbox bench``).

* ``cow_fault_us``: what one copy-on-write fault costs a running guest, end to end (TLB
  fill, fault, copy, TLB shootdown, refill): a guest writes one byte to each of 1024
  pages, once with every page shared (the zero frame) and once with every page
  private; the difference per page, best of 9 runs each (other processes on the
  machine only ever add time). Goal: at most 20 us.
* ``scan_vs_hash``: pages per second the sharing scanner gets through (two full passes
  over pages that are all different: the worst case, every page hashed and remembered)
  divided by pages per second of the bare hash (crc32) over the same pages. Goal: 0.5.
* ``twins_saving``: eight twins guests; the host frames page sharing saved, as a
  fraction of what merging every identical page would save. Goal: 0.9.
"""
from __future__ import annotations

import os
import time
import zlib
from pathlib import Path
from typing import Any

from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.host.ram import PAGE, FramePool

# The guest (GNU as; WRITER is what it assembles to at 0x7C00, checked by the tests):
# protected mode with a flat GDT, then one byte written to each of 1024 pages from 1 MiB.
WRITER_SOURCE = r"""
.code16
    cli
    lgdtl gdtr
    mov %cr0, %eax
    or $1, %al
    mov %eax, %cr0
    ljmpl $0x08, $pm
.code32
pm:
    mov $0x10, %ax
    mov %ax, %ds
    mov $0x100000, %edi
    mov $1024, %ecx
1:  movb $1, (%edi)
    add $0x1000, %edi
    loop 1b
    hlt                         # interrupts are off: the VM powers off
.align 8
gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff
gdtr: .word 23
    .long gdt
"""
WRITER = bytes.fromhex(
    "fa660f0116507c0f20c00c010f22c066ea177c0000080066b810008ed8bf00001000b900040000c607"
    "0181c700100000e2f5f48d742600900000000000000000ffff0000009acf00ffff00000092cf001700"
    "387c0000")
WRITER_FIRST_GFN, WRITER_PAGES = 0x100, 1024
REPEATS = 9


def _boot_sector() -> bytes:
    return WRITER + bytes(510 - len(WRITER)) + b"\x55\xaa"


def _writer_run_s(disk: Path, shared: bool) -> float:
    from sandbox.api import Machine   # noqa: PLC0415 (the API imports the hypervisor)
    vm = VmConfig(name="writer", memory_mib=8, disk=disk)
    m = Machine(MachineConfig(HostConfig(page_sharing=shared, deterministic=True), [vm]))
    try:
        m.power_on()
        mem = m.vm().memory
        for gfn in range(WRITER_FIRST_GFN, WRITER_FIRST_GFN + WRITER_PAGES):
            mem.read(gfn * PAGE, 1)                   # touched: a frame each, all zero
        if shared:
            m.hypervisor.memory_manager.sharing.scan(10_000)   # zero pages merge at once
        start = time.perf_counter()
        m.run(wall_timeout_s=30)
        elapsed = time.perf_counter() - start
        assert m.vm().state.value == "powered_off", m.vm().exit_reason
        return elapsed
    finally:
        m.close()


def cow_fault_us(tmp: Path) -> float:
    disk = tmp / "writer.img"
    disk.write_bytes(_boot_sector())
    private, shared = [], []
    for _ in range(REPEATS):                  # interleaved: a busy moment hits both alike
        private.append(_writer_run_s(disk, False))
        shared.append(_writer_run_s(disk, True))
    return max(0.0, (min(shared) - min(private)) / WRITER_PAGES * 1e6)


def _scan_two_passes_s(vms: int, pages: int) -> tuple[float, float]:
    """(seconds for two full scans of fresh, all-different pages; seconds to crc32 them twice)."""
    from sandbox.hypervisor.memory_manager import MemoryManager   # noqa: PLC0415
    mm = MemoryManager(FramePool(vms * pages + 16), lambda *a, **k: None, HostConfig(page_sharing=True),
                       wants=lambda kind: False)
    for i in range(vms):
        mem = mm.create(f"vm{i}", pages * PAGE)
        for gfn in range(pages):
            mem.write(gfn * PAGE, os.urandom(PAGE))
    start = time.perf_counter()
    visited = mm.sharing.scan(vms * pages) + mm.sharing.scan(vms * pages)
    scan_s = time.perf_counter() - start
    assert visited == 2 * vms * pages
    view = mm.pool.view
    frames = [view[h * PAGE:(h + 1) * PAGE] for acct in mm.accounts.values() for h in acct.memory.table]
    start = time.perf_counter()
    for _ in range(2):
        for frame in frames:
            zlib.crc32(frame)
    return scan_s, time.perf_counter() - start


def scan_rates(vms: int = 4, pages: int = 1024) -> dict[str, float]:
    runs = [_scan_two_passes_s(vms, pages) for _ in range(3)]
    scan_rate = 2 * vms * pages / min(r[0] for r in runs)
    hash_rate = 2 * vms * pages / min(r[1] for r in runs)
    return {"scan_pages_per_s": scan_rate, "hash_pages_per_s": hash_rate, "scan_vs_hash": scan_rate / hash_rate}


def twins_saving(copies: int = 8) -> dict[str, float]:
    from sandbox.api import Machine   # noqa: PLC0415
    from sandbox.guestbuild import IMAGES_DIR   # noqa: PLC0415
    vms = [VmConfig(name=f"twin{i}", memory_mib=2, kernel=IMAGES_DIR / "twins.elf",
                    cmdline="kib=768 rate=32 checks=2 interval=10") for i in range(copies)]
    host = HostConfig(page_sharing=True, pages_to_scan=1000, scan_period_ms=5)
    m = Machine(MachineConfig(host, vms))
    try:
        m.power_on()
        m.run(wall_timeout_s=60)
        mm = m.hypervisor.memory_manager
        view = mm.pool.view
        mapped = [h for acct in mm.accounts.values() for h in acct.memory.table if h >= 0]
        used = len(set(mapped))
        ideal = len({bytes(view[h * PAGE:(h + 1) * PAGE]) for h in set(mapped)})
        saved, could = len(mapped) - used, len(mapped) - ideal
        return {"twins_saving": saved / could if could else 1.0, "twins_guest_pages": len(mapped),
                "twins_host_frames": used, "twins_ideal_frames": ideal}
    finally:
        m.close()


def measure() -> dict[str, Any]:
    import tempfile   # noqa: PLC0415
    with tempfile.TemporaryDirectory(prefix="mem-bench-") as tmp:
        cow = cow_fault_us(Path(tmp))
    return {"cow_fault_us": cow, **scan_rates(), **twins_saving(),
            "goals": {"cow_fault_us": "<= 20", "scan_vs_hash": ">= 0.5", "twins_saving": ">= 0.9"}}


if __name__ == "__main__":
    for key, value in measure().items():
        print(f"{key:22} {value:.3f}" if isinstance(value, float) else f"{key:22} {value}")
