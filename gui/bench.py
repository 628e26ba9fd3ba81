"""How much the open window costs: ``measure(seconds) -> {"gui_fps", "gui_throughput_ratio", ...}``.

Eight VMs (shipped guests: half cpuhog, a pure CPU hog, half tinyos, mostly idle) on
a two-CPU host run twice for ``seconds`` of wall time after a short warm-up: once
headless (``Machine.run`` in this thread) and once behind the explorer window
(offscreen, its refresh timer driven by the Qt event loop). Throughput is guest
instructions retired per wall second; the ratio is window / headless, with headless
measured before and after the window (the mean) so a busy host skews both alike.
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


def _instructions(machine: Machine) -> int:
    return sum(c.stats.instructions for vm in machine.vms.values() for c in vm.vcpus)


def _headless(config, seconds: float) -> float:
    with Machine(config) as m:
        m.power_on()
        m.run(wall_timeout_s=WARMUP_S)
        start, t0 = _instructions(m), time.perf_counter()
        m.run(wall_timeout_s=seconds)
        return (_instructions(m) - start) / (time.perf_counter() - t0)


def _with_window(config, seconds: float) -> tuple[float, float]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QEventLoop, QTimer   # noqa: PLC0415
    from PySide6.QtWidgets import QApplication      # noqa: PLC0415

    from gui.facade import MachineFacade            # noqa: PLC0415
    from gui.window import MainWindow               # noqa: PLC0415
    app = QApplication.instance() or QApplication([])
    facade = MachineFacade(Machine(config))
    window = MainWindow(facade)
    try:
        window.show()
        facade.power_on(None).wait(30)
        window.start()

        def spin(duration: float) -> None:
            loop = QEventLoop()
            QTimer.singleShot(int(duration * 1000), loop.quit)
            loop.exec()

        def retired() -> int:
            snap = facade.snapshot()
            return sum(c.instructions for vm in snap.vms for c in vm.vcpus) if snap else 0

        spin(WARMUP_S)
        frames0, insns0, t0 = window.state.frame, retired(), time.perf_counter()
        spin(seconds)
        elapsed = time.perf_counter() - t0
        frames, insns = window.state.frame - frames0, retired() - insns0
        app.processEvents()
        return frames / elapsed, insns / elapsed
    finally:
        window.timer.stop()
        window.close()
        facade.close()


def measure(seconds: float = 3.0) -> dict[str, float]:
    scenario = default_scenario(guests=BENCH_GUESTS, host=HostConfig(cpus=2))
    try:
        before = _headless(scenario.config, seconds)
        fps, windowed = _with_window(scenario.config, seconds)
        headless = (before + _headless(scenario.config, seconds)) / 2
    finally:
        scenario.close()
    return {"gui_fps": round(fps, 1), "gui_throughput_ratio": round(windowed / headless, 3),
            "headless_mips": round(headless / 1e6, 1), "gui_mips": round(windowed / 1e6, 1),
            "vms": len(BENCH_GUESTS)}


if __name__ == "__main__":
    print(measure())
