"""The explorer window, offscreen (pytest-qt): what a teacher does with it."""
from __future__ import annotations

import gc
import threading
from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from asm import disk_image, needs_as   # noqa: E402
from PySide6.QtGui import QColor, QImage   # noqa: E402
from PySide6.QtWidgets import QApplication   # noqa: E402
from sandbox.api import Machine   # noqa: E402
from sandbox.events import Event   # noqa: E402

from gui.app import main   # noqa: E402
from gui.facade import MachineFacade   # noqa: E402
from gui.state import WORKFLOW_STEPS   # noqa: E402
from gui.theme import LAYER_COLOURS   # noqa: E402
from gui.window import MainWindow   # noqa: E402
from test_gui_core import ECHO, LOOP   # noqa: E402

pytestmark = [needs_as, pytest.mark.timeout(120)]


# Says hi on COM1 and halts with interrupts off: the VM powers itself off.
HALT = """
    mov $0x3f8, %dx
    mov $'h', %al
    out %al, %dx
    mov $'i', %al
    out %al, %dx
    cli
    hlt
"""


def write_config(tmp_path: Path, first: tuple[str, str] = ("echo", ECHO)) -> Path:
    for name, source in (first, ("loop", LOOP)):
        disk_image(tmp_path / f"{name}.img", source)
    config = tmp_path / "machine.toml"
    config.write_text(f'[host]\ncpus = 2\n\n[[vm]]\nname = "{first[0]}"\ndisk = "{first[0]}.img"\n\n'
                      '[[vm]]\nname = "loop"\ndisk = "loop.img"\n')
    return config


@pytest.fixture
def window(qtbot, tmp_path):
    facade = MachineFacade(Machine(write_config(tmp_path)))
    win = MainWindow(facade)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.timer.stop()
    facade.close()


def pump(qtbot, win: MainWindow, until, timeout: float = 15.0) -> None:
    """Refresh the window (as its timer would) until ``until()`` holds."""
    def check():
        win.refresh()
        assert until()
    qtbot.waitUntil(check, timeout=int(timeout * 1000))


def test_window_opens_offscreen_with_the_three_layers(window):
    keys = set(window.architecture.blocks)
    assert {"band.vm", "band.hypervisor", "band.hardware", "vm.echo.vcpus", "hw.ram", "hv.scheduler"} <= keys
    window.state.set_layout("advanced")
    window.refresh()
    assert {"vm.echo.exits", "hv.firmware", "hv.switch"} <= set(window.architecture.blocks)


def test_power_on_lights_the_workflow_steps_in_order(qtbot, window):
    window.inspector.vm.setCurrentText("echo")
    window.inspector.buttons["power_on"].click()
    pump(qtbot, window, lambda: "power.running" in window.workflow.lit_steps())
    lit = window.workflow.lit_steps()
    assert lit == [k for k, _ in WORKFLOW_STEPS if k != "power.network_attached"]
    arrivals = [window.state.workflow["echo"][k].seq for k in lit]
    assert arrivals == sorted(arrivals)
    assert window.workflow.table.item(0, 0).text().startswith("\u2713 1.")
    assert window.workflow.table.item(5, 1).text() == "skipped"     # no NIC
    pump(qtbot, window, lambda: not window.inspector.buttons["power_on"].isEnabled())   # next snapshot


def test_console_shows_guest_output_and_accepts_input(qtbot, window):
    window.inspector.vm.setCurrentText("echo")
    window.inspector.buttons["power_on"].click()
    console = window.inspector.console
    pump(qtbot, window, lambda: "ready" in console.text.toPlainText())
    console.input.setText("hello guest")
    console.input.returnPressed.emit()
    pump(qtbot, window, lambda: "hello guest" in console.text.toPlainText())
    qtbot.keyClicks(console.text, "xyz")
    pump(qtbot, window, lambda: "xyz" in console.text.toPlainText())


def test_step_button_advances_exactly_one_instruction(qtbot, window):
    window.speed.actions_["step"].trigger()
    window.inspector.vm.setCurrentText("loop")
    window.inspector.buttons["power_on"].click()
    window.inspector.tabs.setCurrentWidget(window.inspector.cpu)
    pump(qtbot, window, lambda: window.state.detail() is not None and window.state.detail().regs["eip"] == 0x7C00)
    for expected in (0x7C02, 0x7C03, 0x7C04, 0x7C05, 0x7C02):
        window.inspector.buttons["step"].click()
        pump(qtbot, window, lambda: window.state.detail().regs["eip"] == expected)
        pc_lines = [line for line in window.inspector.cpu.lines if line.is_pc]
        assert pc_lines[0].address == expected
    assert window.state.snapshot.speed == "step"


def test_crashing_one_vm_leaves_the_others_running(qtbot, window):
    window.speed.actions_["full"].trigger()
    window.findChild(type(window.speed)).actions()[0].trigger()      # "Power on all"
    pump(qtbot, window, lambda: all(v.state == "running" for v in window.state.snapshot.vms))
    window.inspector.vm.setCurrentText("loop")
    window.inspector.buttons["crash"].click()
    pump(qtbot, window, lambda: window.state.snapshot.vm("loop").state == "crashed")
    echo = lambda: window.state.snapshot.vm("echo").vcpus[0].instructions   # noqa: E731
    start = echo()
    pump(qtbot, window, lambda: echo() > start + 100_000)
    assert window.state.snapshot.vm("echo").state == "running"
    badge = lambda vm: window.architecture.blocks[f"vm.{vm}"].badge[0]   # noqa: E731
    pump(qtbot, window, lambda: badge("loop") == "crashed")     # the diagram's texts follow within 0.2 s
    assert badge("echo") == "running"


def test_clicking_an_event_outlines_where_it_happened(qtbot, window):
    window.facade.power_on("echo")
    pump(qtbot, window, lambda: window.log.model.rowCount() > 0)
    rows = window.log.model.rows
    row = next(i for i, e in enumerate(rows) if e.kind == "power.open_disk")
    window.log.select_row(row)
    window.refresh()
    outlined = {k for k, b in window.architecture.blocks.items() if b.selected}
    assert outlined == {"vm.echo.disk", "hw.disks"}
    window.log.vm.setCurrentText("loop")
    assert window.log.model.rowCount() == 0


def live_objects() -> int:
    """Objects the collector tracks, less the events (held in bounded buffers) and dicts."""
    return sum(1 for o in gc.get_objects() if not isinstance(o, (Event, dict)))


def test_two_thousand_refresh_frames_do_not_leak(qtbot, window):
    window.facade.trace_frequent(True)           # a flood of events: every I/O exit, every switch
    window.facade.power_on(None)
    window.state.set_layout("advanced")
    for _ in range(200):
        window.refresh()
    gc.collect()
    objects = live_objects()
    items = len(window.architecture.scene().items())
    app = QApplication.instance()
    for i in range(2000):
        window.refresh()
        if i % 10 == 0:
            app.processEvents()                  # let Qt paint what changed
        if i % 100 == 0:
            window.inspector.tabs.setCurrentIndex(i // 100 % 4)
    gc.collect()
    assert window.state.frame >= 2200
    assert live_objects() < objects + 5_000
    assert len(window.state.events) <= 20_000
    assert len(window.architecture.scene().items()) < items + 100
    assert window.log.model.rowCount() <= 20_000
    assert window.facade.snapshot().vm("echo").state == "running"


def test_screenshot_command_writes_a_png_with_the_three_layers(tmp_path):
    out = tmp_path / "shot.png"
    config = write_config(tmp_path, ("halt", HALT))     # the echo guest exits on every poll: slow
    assert main(["--screenshot", str(out), "--after", "0.2", "--size", "1280x800", str(config)]) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1280, 800)
    colours = {image.pixelColor(x, y).name() for x in range(0, 1280, 3) for y in range(0, 800, 3)}
    for layer, (fill, _, _) in LAYER_COLOURS.items():
        assert QColor(fill).name() in colours, f"no {layer} band in the screenshot"


def test_a_bad_config_is_one_line_on_stderr(tmp_path, capsys):
    assert main(["--screenshot", str(tmp_path / "x.png"), str(tmp_path / "missing.toml")]) == 2
    assert capsys.readouterr().err.strip().startswith("sandbox-gui: ")


def test_the_gui_thread_never_calls_into_the_engine(qtbot, window):
    window.facade.power_on(None)
    window.facade.settle()
    callers: set[str] = set()

    def spy(method):
        def call(*args, **kwargs):
            callers.add(threading.current_thread().name)
            return method(*args, **kwargs)
        return call
    for vm in window.facade._machine.vms.values():           # the test may look behind the facade
        for cpu in vm.vcpus:
            for name in ("get_regs", "read_linear", "linear_pc", "run", "step"):
                setattr(cpu.backend, name, spy(getattr(cpu.backend, name)))
    window.inspector.tabs.setCurrentWidget(window.inspector.cpu)
    window.inspector.buttons["step"].click()
    pump(qtbot, window, lambda: window.state.snapshot.speed == "step" and len(callers) > 0)
    for _ in range(50):
        window.refresh()
    assert callers == {"machine-worker"}
