"""The storage row of ``sandbox bench``: what a guest gets from its disk, per bus.

* ``disk_virtio_ratio``: diskbench reading 64 MiB of its disk sequentially over
  virtio-blk in 4 MiB requests, in MiB per wall-clock second, divided by Python
  reading the same file with ``os.pread`` in the same request size, same run, the
  best pass of each. The guest's first pass warms up (its buffers get their host
  frames) and is not timed.
  ``disk_virtio_ratio_1m_qd4`` is the same with 1 MiB requests, 4 in flight: the
  fixed cost of a request (an exit, an interrupt, Python) weighs more there.
* ``disk_ata_ratio``: the same over the emulated ATA disk (64 KiB commands, 32-bit
  PIO), divided by Python reading 64 KiB at a time.
* ``exits_per_kib_virtio`` / ``exits_per_kib_ata``: accesses to the disk's registers
  (each one an exit to the hypervisor) per KiB moved, from the run report.

Both runs use the default ideal host disk, so they measure the virtualization cost,
not a latency model.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.guestbuild import DISKBENCH_REGION_START, IMAGES_DIR, write_command_line

DISKBENCH = IMAGES_DIR / "diskbench.img"


def _disk(folder: Path, name: str, region_kib: int) -> Path:
    path = folder / name
    shutil.copyfile(DISKBENCH, path)
    with open(path, "r+b") as f:
        f.truncate(DISKBENCH_REGION_START + region_kib * 1024)
    return path


def guest_read(disk: Path, bus: str, region_kib: int, block_kib: int, qd: int, passes: int) -> dict[str, float]:
    """Run diskbench's sequential read; wall-clock MiB/s of the best of passes 2..n,
    and the report's disk section."""
    write_command_line(disk, f"kib={region_kib} block={block_kib} ops=1 qd={qd} seed=1 "
                             f"mode=seqread reports={passes} wait=irq")
    machine = Machine(MachineConfig(HostConfig(), [VmConfig(name="bench", disk=disk, disk_bus=bus,
                                                            memory_mib=16)]))
    done: list[float] = []
    machine.events.subscribe(lambda ev: done.append(time.perf_counter()), ["disk.done"])
    try:
        machine.power_on()
        machine.run(wall_timeout_s=300)
        vm = machine.vm()
        if "done, 0 errors" not in vm.console.decode("latin-1"):
            raise RuntimeError(f"diskbench over {bus} failed: {vm.console.decode('latin-1')[-200:]}")
        disk = machine.report()["vms"][0]["disk"]
    finally:
        machine.close()
    per_pass = len(done) // passes
    # Streaming time only: from the first to the last completion of a pass (the guest
    # prints a line between passes, one exit per character). The best pass counts, as
    # for Python: other processes on the host only ever make a pass slower.
    mib = (per_pass - 1) * block_kib / 1024
    best = max(mib / (done[(i + 1) * per_pass - 1] - done[i * per_pass]) for i in range(1, passes))
    return {"mib_s": best, **disk}


def python_read(path: Path, region_kib: int, block_kib: int, passes: int = 3) -> float:
    """MiB/s of os.pread over the same region in the same request size (best pass)."""
    fd = os.open(path, os.O_RDONLY)
    best = 0.0
    try:
        for _ in range(passes):
            t0 = time.perf_counter()
            for offset in range(DISKBENCH_REGION_START, DISKBENCH_REGION_START + region_kib * 1024, block_kib * 1024):
                os.pread(fd, block_kib * 1024, offset)
            best = max(best, region_kib / 1024 / (time.perf_counter() - t0))
    finally:
        os.close(fd)
    return best


def measure() -> dict[str, float]:
    if not DISKBENCH.exists():
        raise RuntimeError(f"{DISKBENCH} is missing: run `sandbox guests build diskbench`")
    with tempfile.TemporaryDirectory(prefix="disk-bench-") as tmp:
        folder = Path(tmp)
        big = _disk(folder, "virtio.img", 64 * 1024)
        virtio = guest_read(big, "virtio", 64 * 1024, 4096, 1, passes=6)
        py_virtio = python_read(big, 64 * 1024, 4096, passes=5)
        virtio_1m = guest_read(big, "virtio", 64 * 1024, 1024, 4, passes=6)
        py_1m = python_read(big, 64 * 1024, 1024, passes=5)
        small = _disk(folder, "ata.img", 512)
        ata = guest_read(small, "ata", 512, 64, 1, passes=3)
        py_ata = python_read(small, 512, 64)
    return {
        "disk_virtio_ratio": round(virtio["mib_s"] / py_virtio, 3),
        "disk_virtio_ratio_1m_qd4": round(virtio_1m["mib_s"] / py_1m, 3),
        "disk_ata_ratio": round(ata["mib_s"] / py_ata, 6),
        "exits_per_kib_virtio": round(virtio_1m["exits"] * 1024 / max(1, virtio_1m["bytes_read"]), 4),
        "exits_per_kib_ata": ata["exits_per_kib"],
        "virtio_mib_s": round(virtio["mib_s"], 1),
        "virtio_1m_qd4_mib_s": round(virtio_1m["mib_s"], 1),
        "ata_mib_s": round(ata["mib_s"], 2),
        "python_mib_s_4m": round(py_virtio, 1),
        "python_mib_s_1m": round(py_1m, 1),
        "python_mib_s_64k": round(py_ata, 1),
    }


if __name__ == "__main__":
    print(measure())
