"""The GUI lesson panel advances a lesson offscreen: text, predictions as radio
buttons, highlights for the explorer, progress saved."""
from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from gui.lesson_panel import LessonPanel  # noqa: E402
from lessons.engine.format import find_lesson, load_lesson  # noqa: E402
from lessons.engine.player import LessonPlayer  # noqa: E402
from lessons.engine.progress import Progress  # noqa: E402


@pytest.fixture
def panel(qtbot, tmp_path):
    player = LessonPlayer(load_lesson(find_lesson(1).folder))
    widget = LessonPanel(player, progress=Progress(tmp_path))
    qtbot.addWidget(widget)
    yield widget
    player.close()


def test_panel_shows_the_first_step_and_its_highlights(panel, qtbot):
    assert panel.step_label.text() == "Step 1/5: The picture"
    assert "three layers" in panel.text.toPlainText()
    assert panel.prediction_box.isHidden()
    with qtbot.waitSignal(panel.highlight_changed) as signal:
        panel.run_button.click()
    assert signal.args[0] == ["layer:hardware", "host:ram"]     # step 2's targets


def test_panel_plays_a_lesson_to_the_end_with_predictions(panel, qtbot, tmp_path):
    panel.run_button.click()                         # step 1: text only
    assert not panel.prediction_box.isHidden()
    assert [b.text() for b in panel.choices.buttons()] == ["less than 1 MiB", "between 1 and 16 MiB",
                                                          "all 16 MiB"]
    panel.select_choice(0)
    with qtbot.waitSignal(panel.step_played) as played:
        panel.run_button.click()                     # step 2: power on
    result = played.args[0]
    assert result.completed and result.prediction.correct
    assert "Right!" in panel.output.toPlainText()
    panel.run_button.click()                         # step 3
    panel.select_choice(1)                           # step 4: "serial.tx" is wrong
    panel.run_button.click()
    assert "Not this time." in panel.output.toPlainText()
    with qtbot.waitSignal(panel.lesson_finished):
        panel.run_button.click()                     # step 5: power-off
    assert "Hello from the guest!" in panel.output.toPlainText()
    assert not panel.run_button.isEnabled() and panel.step_label.text() == "Lesson complete (5 steps)"
    assert Progress(tmp_path).lesson("01_three_layers")["completed"]
