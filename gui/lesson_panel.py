"""The lesson panel: plays a lesson beside the explorer, one step per click.

    panel = LessonPanel(LessonPlayer(load_lesson(folder)), progress=Progress())
    panel.highlight_changed.connect(explorer.highlight)     # ["layer:vm", "device:hello/com1"]

It shows the current step's text (Markdown), asks its prediction with one radio
button per choice, plays the step when the student presses "Run step", then shows
what happened: the events, the VM consoles, whether the prediction was right, and
the hint when the step's event did not arrive. ``highlight_changed`` tells the
explorer what the current step talks about (the highlight names are listed in
``lessons/engine/format.py``).

The player runs in the calling (GUI) thread: a lesson step runs at most a few
hundred milliseconds of guest time.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from lessons.engine.conditions import CONDITIONS, format_event
from sandbox.events import EVENT_KINDS

if TYPE_CHECKING:
    from lessons.engine.player import LessonPlayer, StepResult
    from lessons.engine.progress import Progress


class LessonPanel(QWidget):
    highlight_changed = Signal(list)        # the current step's highlight targets
    step_played = Signal(object)            # a StepResult
    lesson_finished = Signal()

    def __init__(self, player: "LessonPlayer", progress: "Progress | None" = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.player = player
        self.progress = progress
        self.last_result: "StepResult | None" = None

        self.title = QLabel(f"<b>Lesson {player.lesson.number}: {html.escape(player.lesson.title)}</b>")
        self.title.setWordWrap(True)
        self.step_label = QLabel()
        self.text = QTextBrowser()
        self.text.setOpenExternalLinks(True)
        self.prediction_box = QGroupBox("Predict")
        self.question = QLabel()
        self.question.setWordWrap(True)
        self.choices = QButtonGroup(self)
        self._choice_layout = QVBoxLayout(self.prediction_box)
        self._choice_layout.addWidget(self.question)
        self.output = QTextBrowser()
        self.run_button = QPushButton("Run step")
        self.run_button.clicked.connect(self.play_current)

        buttons = QHBoxLayout()
        buttons.addWidget(self.step_label, 1)
        buttons.addWidget(self.run_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.text, 3)
        layout.addWidget(self.prediction_box)
        layout.addLayout(buttons)
        layout.addWidget(self.output, 2)
        self.show_current()

    # --- the current step -----------------------------------------------------------------
    def show_current(self) -> None:
        step = self.player.current_step
        total = len(self.player.steps)
        if step is None:
            self.step_label.setText(f"Lesson complete ({total} steps)")
            self.run_button.setEnabled(False)
            self.prediction_box.hide()
            self.highlight_changed.emit([])
            return
        number = self.player.index + 1
        self.step_label.setText(f"Step {number}/{total}" + (f": {step.title}" if step.title else ""))
        self.text.setMarkdown(step.text)
        self._show_prediction(step)
        self.run_button.setEnabled(True)
        self.highlight_changed.emit(list(step.highlight))

    def _show_prediction(self, step) -> None:
        for button in self.choices.buttons():
            self.choices.removeButton(button)
            button.deleteLater()
        pred = step.predict
        if pred is None:
            self.prediction_box.hide()
            return
        self.question.setText(pred.question)
        for i, choice in enumerate(pred.choices):
            button = QRadioButton(choice.label)
            self.choices.addButton(button, i)
            self._choice_layout.addWidget(button)
        self.prediction_box.show()

    def selected_choice(self) -> int | None:
        index = self.choices.checkedId()
        return None if index < 0 else index

    def select_choice(self, index: int) -> None:
        button = self.choices.button(index)
        if button is not None:
            button.setChecked(True)

    # --- playing ------------------------------------------------------------------------------
    def play_current(self) -> "StepResult | None":
        if self.player.finished:
            return None
        result = self.player.play_step(self.selected_choice())
        self.last_result = result
        if self.progress is not None:
            self.progress.record_step(self.player.lesson, self.player.index, result)
        self.output.setHtml(render_result(result))
        self.step_played.emit(result)
        self.show_current()
        if self.player.finished:
            self.lesson_finished.emit()
        return result


def render_result(result: "StepResult") -> str:
    """A step's outcome as HTML: verdict, prediction, events, consoles, notes."""
    esc = html.escape
    parts = []
    if result.completed:
        parts.append(f"<p><b>Done.</b> {esc(result.match)}</p>")
    else:
        until = result.step.until
        waited = CONDITIONS[until.kind].describe(until.params) if until else "the step"
        parts.append(f"<p><b>Not completed:</b> no {esc(waited)} within {result.step.limit_ms:g} ms "
                     "of guest time.</p>")
        if result.hint:
            parts.append(f"<p><i>Hint:</i> {esc(result.hint)}</p>")
    if result.error:
        parts.append(f"<p><b>Problem:</b> {esc(result.error)}</p>")
    pred = result.prediction
    if pred is not None:
        verdict = "" if pred.chosen is None else (" Right!" if pred.correct else " Not this time.")
        said = "" if pred.chosen is None else f"You said <b>{esc(pred.chosen)}</b>; "
        parts.append(f"<p>{said}the machine says <b>{esc(str(pred.answer))}</b> "
                     f"(measured: {esc(str(pred.value))}).{verdict}</p>")
    if result.notes:
        parts.append("<pre>" + esc("\n".join(result.notes)) + "</pre>")
    if result.events:
        rows = "".join(f"<li title='{esc(EVENT_KINDS[e.kind].description)}'>"
                       f"{e.time_ns / 1e6:.3f} ms {esc(format_event(e))}</li>" for e in result.events)
        more = "".join(f"<li>({n} more {esc(k)} events in between not listed)</li>"
                       for k, n in result.more.items())
        parts.append(f"<ul>{rows}{more}</ul>")
    for vm, text in result.console.items():
        parts.append(f"<p><b>{esc(vm)} COM1</b></p><pre>{esc(text.replace(chr(13), ''))}</pre>")
    return "".join(parts)
