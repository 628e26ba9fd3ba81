"""``sandbox-gui [machine.toml | --lesson N] [--layout L] [--screenshot out.png [--after SECONDS]]``.

Without a config the window opens on the embedded default scenario. With
``--screenshot`` the window is rendered offscreen: every VM is powered on, the
machine runs that much guest time, and the window is saved as a PNG. With
``--lesson N`` the window opens on the lesson's machine with the lesson panel
docked beside the diagram; a screenshot then plays ``--steps K`` steps first.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from sandbox.errors import SandboxError

from gui.layouts import LAYOUTS

INSPECTOR_TABS = ("console", "screen", "cpu", "breakpoints")     # in the inspector's tab order


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="sandbox-gui", description="The visual architecture explorer.")
    p.add_argument("config", nargs="?", help="a machine.toml (default: the embedded scenario)")
    p.add_argument("--layout", choices=sorted(LAYOUTS), default="beginner", help="diagram layout")
    p.add_argument("--screenshot", metavar="PNG", help="render the window offscreen and save it")
    p.add_argument("--after", type=float, default=1.0, metavar="SECONDS",
                   help="guest seconds to run before the screenshot (default 1)")
    p.add_argument("--size", help="window size for the screenshot, WxH (default 1600x1000, "
                   "1920x1080 with --lesson)")
    p.add_argument("--tab", choices=("plots", "log"), default="plots", help="bottom tab in the screenshot")
    p.add_argument("--inspector", choices=INSPECTOR_TABS, default="console", help="inspector tab in the screenshot")
    p.add_argument("--vm", help="the VM to inspect (default: the first)")
    p.add_argument("--lesson", metavar="N", help="play lesson N (number, folder or slug) beside the explorer")
    p.add_argument("--steps", type=int, default=2, metavar="K",
                   help="with --lesson --screenshot: lesson steps to play first (default 2)")
    return p.parse_args(argv)


def screenshot(window, facade, path: str, after_s: float, tab: str, inspector: str = "console",
               vm: str | None = None) -> None:
    """Power everything on, run ``after_s`` of guest time, refresh, save the window."""
    from PySide6.QtWidgets import QApplication   # noqa: PLC0415
    app = QApplication.instance()
    window.bottom.setCurrentIndex(0 if tab == "plots" else 1)
    window.inspector.tabs.setCurrentIndex(INSPECTOR_TABS.index(inspector))
    if vm is not None:
        if vm not in facade.vm_names:
            raise SandboxError(f"--vm {vm}: no such VM (there are: {', '.join(facade.vm_names)})")
        window.state.select_vm(vm)
    window.show()
    facade.power_on(None)
    ticket = facade.run_until(int(after_s * 1e9))
    while True:                      # keep the views fed while the machine runs
        window.refresh()
        app.processEvents()
        snap = facade.snapshot()
        after_it = ticket.done.is_set() and snap is not None and snap.commands >= ticket.number
        if after_it and snap.speed == "step":
            break                    # it ran to the target and paused
        time.sleep(1 / 60)
    save(window, facade, path)


def save(window, facade, path: str) -> None:
    """Let the machine and the animations settle, refresh every view, save the window."""
    from PySide6.QtWidgets import QApplication   # noqa: PLC0415
    app = QApplication.instance()
    facade.settle(30)
    calm = time.monotonic() + 2.5       # let the power-on animations fade: a calm picture
    while time.monotonic() < calm and (window.architecture.arrows or window.architecture.flashes):
        window.refresh()
        app.processEvents()
        time.sleep(1 / 40)
    for _ in range(3):
        window.refresh()
        app.processEvents()
    window.plots.refresh(force=True)
    app.processEvents()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(path, "PNG"):
        raise SandboxError(f"{path}: cannot write the screenshot")


def lesson_screenshot(window, facade, path: str, steps: int, tab: str, inspector: str = "console",
                      vm: str | None = None) -> None:
    """Play the lesson's first ``steps`` steps through its panel, then save the window."""
    from PySide6.QtWidgets import QApplication   # noqa: PLC0415
    app = QApplication.instance()
    panel = window.lesson_panel
    if not 0 <= steps <= len(panel.player.steps):
        raise SandboxError(f"--steps {steps}: lesson {panel.player.lesson.number} has "
                           f"{len(panel.player.steps)} steps")
    window.bottom.setCurrentIndex(0 if tab == "plots" else 1)
    window.inspector.tabs.setCurrentIndex(INSPECTOR_TABS.index(inspector))
    if vm is not None:
        if vm not in facade.vm_names:
            raise SandboxError(f"--vm {vm}: no such VM (there are: {', '.join(facade.vm_names)})")
        window.state.select_vm(vm)
    window.show()
    for _ in range(steps):
        panel.play_current()
        while panel.busy:
            window.refresh()
            app.processEvents()
            time.sleep(1 / 60)
    save(window, facade, path)


def _size(text: str) -> tuple[int, int]:
    w, _, h = text.partition("x")
    if not (w.isdigit() and h.isdigit()) or not (320 <= int(w) <= 8000 and 240 <= int(h) <= 8000):
        raise SandboxError(f"--size {text}: write WIDTHxHEIGHT, e.g. 1600x1000")
    return int(w), int(h)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif sys.platform.startswith("linux") and not any(
            os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")):
        print("sandbox-gui: no display (DISPLAY is not set); use --screenshot to render offscreen",
              file=sys.stderr)
        return 2
    from PySide6.QtWidgets import QApplication   # noqa: PLC0415 (Qt only when the GUI runs)

    from gui.facade import MachineFacade          # noqa: PLC0415
    from gui.window import MainWindow             # noqa: PLC0415
    app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        if args.after < 0:
            raise SandboxError(f"--after {args.after}: must be 0 or more guest seconds")
        size = _size(args.size or ("1920x1080" if args.lesson is not None else "1600x1000"))
        if args.lesson is not None and args.config is not None:
            raise SandboxError("give a machine.toml or --lesson, not both")
        if args.lesson is not None:
            from gui.lesson_dock import open_lesson   # noqa: PLC0415
            facade, player = open_lesson(args.lesson)
        else:
            facade = MachineFacade.open(args.config)
    except SandboxError as e:
        print(f"sandbox-gui: {e}", file=sys.stderr)
        return 2
    window = MainWindow(facade, args.layout)
    if args.lesson is not None:
        from gui.lesson_dock import dock_lesson   # noqa: PLC0415
        from lessons.engine.progress import Progress   # noqa: PLC0415
        dock_lesson(window, player, None if args.screenshot else Progress())
    try:
        if args.screenshot:
            window.resize(*size)
            if args.lesson is not None:
                lesson_screenshot(window, facade, args.screenshot, args.steps, args.tab, args.inspector, args.vm)
            else:
                screenshot(window, facade, args.screenshot, args.after, args.tab, args.inspector, args.vm)
            print(f"wrote {args.screenshot}")
            return 0
        window.start()
        window.show()
        return app.exec()
    except SandboxError as e:
        print(f"sandbox-gui: {e}", file=sys.stderr)
        return 2
    finally:
        window.timer.stop()
        facade.close()
