"""A lesson inside the explorer (offscreen, pytest-qt): the panel docked beside the
diagram, steps played by the explorer's worker on the machine the window shows, and
each step's highlights outlined on the diagram."""
from __future__ import annotations

import pytest

pytest.importorskip("pytestqt")

from gui.app import main   # noqa: E402
from gui.lesson_dock import dock_lesson, open_lesson   # noqa: E402
from gui.places import highlight_places   # noqa: E402
from gui.window import MainWindow   # noqa: E402
from lessons.engine.format import load_index   # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def window(qtbot):
    facade, player = open_lesson(1)
    win = MainWindow(facade)
    panel = dock_lesson(win, player)
    qtbot.addWidget(win)
    win.show()
    win.start()
    yield win
    win.timer.stop()
    panel._poll.stop()
    facade.close()


def play(qtbot, win: MainWindow):
    with qtbot.waitSignal(win.lesson_panel.step_played, timeout=60_000) as played:
        win.lesson_panel.run_button.click()
    return played.args[0]


def test_the_lesson_panel_is_docked_beside_the_diagram(window):
    panel = window.lesson_panel
    assert panel.isVisible() and panel.parentWidget().windowTitle() == "Lesson 1"
    assert panel.step_label.text() == "Step 1/5: The picture"
    assert window.state.selected_places == highlight_places(["layer:hardware", "layer:hypervisor", "layer:vm"])


def test_a_step_runs_on_the_explorers_machine_and_moves_the_highlight(window, qtbot):
    play(qtbot, window)                                  # step 1: text only
    assert window.state.selected_places == highlight_places(["layer:hardware", "host:ram"])
    assert window.lesson_panel.player.machine is window.facade._machine    # one machine, not two
    result = play(qtbot, window)                         # step 2 powers hello on (in the worker)
    assert result.completed
    panel = window.lesson_panel
    assert panel.step_label.text().startswith("Step 3/5") and panel.run_button.isEnabled()
    assert "Done." in panel.output.toPlainText()
    assert window.state.selected_places == highlight_places(["layer:hypervisor", "hypervisor:firmware"])
    snap = window.facade.settle()
    assert snap.vm("hello").state == "running" and snap.speed == "step"   # shown, and paused between steps


def test_the_lessons_menu_lists_the_index(window):
    titles = [a.text() for a in window.lessons_menu.actions()]
    assert titles == [f"{e.number}. {e.title}" for e in load_index()]


def test_sandbox_gui_screenshots_a_lesson_in_progress(tmp_path, capsys):
    out = tmp_path / "lesson.png"
    assert main(["--lesson", "1", "--steps", "2", "--screenshot", str(out), "--size", "1920x1080"]) == 0
    assert out.stat().st_size > 20_000
    assert main(["--lesson", "99", "--screenshot", str(out)]) == 2
    assert "no lesson '99'" in capsys.readouterr().err
