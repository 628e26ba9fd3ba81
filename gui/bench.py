"""How much the open window costs: ``measure(seconds) -> {"gui_fps", "gui_throughput_ratio", ...}``.

Eight VMs (shipped guests: half cpuhog, a pure CPU hog, half tinyos, mostly idle) on
a two-CPU host, twice: a headless machine run by ``Machine.run`` in this thread, and
the same machine behind the explorer window (offscreen, its refresh timer driven by
the Qt event loop). The two take turns in short slices (``ROUNDS`` each), so a busy
host slows both alike; throughput is guest instructions retired per wall second, and
the ratio is window / headless.
"""
from __future__ import annotations

import os
import time

from sandbox.api import Machine
from sandbox.config.model import HostConfig

from gui.scenario import GuestSpec, default_scenario

BENCH_GUESTS = tuple(
    GuestSpec(f"hog{i}", "cpuhog.img", "burn=300000 sleep=0 reports=0", "a pure CPU hog") if i % 2 == 0
    else GuestSpec(f"tiny{i}", "tinyos.img", "", "an idle shell") for i in range(8))
WARMUP_S = 0.5
ROUNDS = 3


def _instructions(machine: Machine) -> int:
    return sum(c.stats.instructions for vm in machine.vms.values() for c in vm.vcpus)


def measure(seconds: float = 3.0) -> dict[str, float]:
    """Run each side for ``seconds`` in total (in ``ROUNDS`` turns) after a warm-up."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer   # noqa: PLC0415 (Qt only when measuring)
    from PySide6.QtWidgets import QApplication      # noqa: PLC0415

    from gui.facade import MachineFacade            # noqa: PLC0415
    from gui.window import MainWindow               # noqa: PLC0415
    app = QApplication.instance() or QApplication([])
    scenario = default_scenario(guests=BENCH_GUESTS, host=HostConfig(cpus=2))
    headless = Machine(scenario.config)
    facade = MachineFacade(Machine(scenario.config))
    window = MainWindow(facade)

    def spin(duration: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(int(duration * 1000), loop.quit)
        loop.exec()

    def retired() -> int:
        snap = facade.settle()
        return sum(c.instructions for vm in snap.vms for c in vm.vcpus)

    try:
        headless.power_on()
        headless.run(wall_timeout_s=WARMUP_S)
        window.show()
        facade.power_on(None).wait(30)
        window.start()
        spin(WARMUP_S)
        h_insns = h_time = g_insns = g_time = frames = 0.0
        for _ in range(ROUNDS):
            facade.set_speed("step")                 # the window's machine rests ...
            window.timer.stop()
            start, t0 = _instructions(headless), time.perf_counter()
            headless.run(wall_timeout_s=seconds / ROUNDS)   # ... while the headless one runs
            h_time += time.perf_counter() - t0
            h_insns += _instructions(headless) - start
            facade.set_speed("full")
            window.start()
            start, frame0, t0 = retired(), window.state.frame, time.perf_counter()
            spin(seconds / ROUNDS)
            g_time += time.perf_counter() - t0
            g_insns += retired() - start
            frames += window.state.frame - frame0
        h_rate, g_rate = h_insns / h_time, g_insns / g_time
        return {"gui_fps": round(frames / g_time, 1), "gui_throughput_ratio": round(g_rate / h_rate, 3),
                "headless_mips": round(h_rate / 1e6, 1), "gui_mips": round(g_rate / 1e6, 1),
                "vms": len(BENCH_GUESTS)}
    finally:
        window.timer.stop()
        window.close()
        facade.close()
        headless.close()
        scenario.close()


if __name__ == "__main__":
    import json
    print(json.dumps(measure()))        # `sandbox bench` runs this in a child process
