"""boot_ratio: power-on to the first serial byte of `hello`, divided by creating a bare
Unicorn instance and running one instruction (same process, best of several runs)."""
from __future__ import annotations

import time
from pathlib import Path

from unicorn import UC_ARCH_X86, UC_MODE_16, UC_PROT_ALL, Uc

from sandbox.api import Machine

HELLO = Path(__file__).resolve().parent.parent.parent / "guests" / "images" / "hello.img"


def bare_unicorn_seconds() -> float:
    t0 = time.perf_counter()
    uc = Uc(UC_ARCH_X86, UC_MODE_16)
    uc.mem_map(0x7000, 0x1000, UC_PROT_ALL)
    uc.mem_write(0x7C00, b"\x90")
    uc.emu_start(0x7C00, 0x7C01, 0, 1)
    return time.perf_counter() - t0


def hello_first_byte_seconds() -> float:
    t0 = time.perf_counter()
    m = Machine.from_image(HELLO)
    vm = m.vm()
    m.power_on()
    m.run(wall_timeout_s=30, should_stop=lambda: len(vm.console) > 0)
    elapsed = time.perf_counter() - t0
    if not vm.console:
        raise RuntimeError("hello printed nothing")
    m.close()
    return elapsed


def measure(runs: int = 5) -> dict[str, float]:
    bare_unicorn_seconds()            # warm up: library loading is not part of either
    hello_first_byte_seconds()
    bare = min(bare_unicorn_seconds() for _ in range(runs))
    ours = min(hello_first_byte_seconds() for _ in range(runs))
    return {"boot_ms": round(ours * 1e3, 2), "bare_unicorn_ms": round(bare * 1e3, 3),
            "boot_ratio": round(ours / bare, 1)}
