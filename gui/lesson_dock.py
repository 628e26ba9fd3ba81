"""A lesson played inside the explorer: the lesson's machine in the window, the lesson
panel docked beside the diagram, and each step's highlights outlined on it.

    window = open_lesson_window(2)          # what ``sandbox-gui --lesson 2`` does

The lesson player and the explorer share one ``Machine``: the player builds it, the
facade's worker thread runs it. The GUI thread never calls into the engine: "Run
step" queues a ``lesson_step`` command (``gui/commands.py``) and the panel shows the
result when the worker has played it. Between steps the explorer stays paused
(single step), so the lesson sets the pace; the speed bar can still run it freely.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDockWidget, QSplitter

from gui.facade import MachineFacade
from gui.lesson_panel import LessonPanel, render_result
from lessons.engine.format import find_lesson, load_index, load_lesson
from lessons.engine.player import LessonPlayer
from lessons.engine.progress import Progress
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from gui.window import MainWindow
    from gui.worker import Ticket

DOCK_WIDTH = 430             # pixels for the lesson panel
LESSON_WINDOW = (1920, 1080)  # the explorer's columns plus the panel need a wide window
POLL_MS = 30                  # how often the panel looks whether the worker finished the step
_WINDOWS: list["MainWindow"] = []    # windows opened from the Lessons menu (kept alive)


class ExplorerLessonPanel(LessonPanel):
    """The lesson panel, with its steps played by the explorer's worker thread."""

    def __init__(self, player: LessonPlayer, facade: MachineFacade, progress: Progress | None = None) -> None:
        self.facade = facade
        self.pending: "Ticket | None" = None
        super().__init__(player, progress)
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self._collect)

    @property
    def busy(self) -> bool:
        return self.pending is not None

    def play_current(self) -> None:              # the "Run step" button
        if self.player.finished or self.busy:
            return
        self.pending = self.facade.lesson_step(self.player, self.selected_choice())
        self.run_button.setEnabled(False)
        self.step_label.setText(self.step_label.text() + "  (running...)")
        self._poll.start()

    def _collect(self) -> None:
        ticket = self.pending
        if ticket is None or not ticket.done.is_set():
            return
        self._poll.stop()
        self.pending = None
        if ticket.error:
            self.output.setPlainText(f"Problem: {ticket.error}")
            self.show_current()
            return
        result = ticket.result
        self.last_result = result
        if self.progress is not None:
            self.progress.record_step(self.player.lesson, self.player.index, result)
        self.output.setHtml(render_result(result))
        self.step_played.emit(result)
        self.show_current()
        if self.player.finished:
            self.lesson_finished.emit()


def open_lesson(key: str | int) -> tuple[MachineFacade, LessonPlayer]:
    """The lesson's machine behind a facade (paused: the lesson sets the pace)."""
    entry = find_lesson(key)
    if not entry.available:
        raise SandboxError(f"lesson {entry.number} is waiting for {', '.join(entry.missing)}")
    player = LessonPlayer(load_lesson(entry.folder))
    facade = MachineFacade(player.machine, [f"lesson {entry.number}: {entry.title}"])
    facade.set_speed("step")
    return facade, player


def dock_lesson(window: "MainWindow", player: LessonPlayer, progress: Progress | None = None) -> ExplorerLessonPanel:
    """Dock the lesson panel at the window's right; its highlights outline the diagram."""
    panel = ExplorerLessonPanel(player, window.facade, progress)
    panel.highlight_changed.connect(window.highlight)
    step = player.current_step
    window.highlight(list(step.highlight) if step is not None else [])
    dock = QDockWidget(f"Lesson {player.lesson.number}", window)
    dock.setObjectName("lesson")
    dock.setWidget(panel)
    dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                     | QDockWidget.DockWidgetFeature.DockWidgetFloatable)
    window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
    window.resizeDocks([dock], [DOCK_WIDTH], Qt.Orientation.Horizontal)
    top = window.architecture.parentWidget()          # the diagram | workflow+inspector splitter
    if isinstance(top, QSplitter):
        top.setSizes([4000, 1])           # the diagram (with the highlights) takes what is left
    window.lesson_panel = panel
    window.resize(max(window.width(), LESSON_WINDOW[0]), max(window.height(), LESSON_WINDOW[1]))
    window.setWindowTitle(f"Virtualization Sandbox - lesson {player.lesson.number}: {player.lesson.title}")
    return panel


def open_lesson_window(key: str | int, layout: str = "beginner",
                       progress: Progress | None = None) -> "MainWindow":
    from gui.window import MainWindow   # noqa: PLC0415 (the window imports this module)
    facade, _player = open_lesson(key)
    window = MainWindow(facade, layout)
    dock_lesson(window, _player, progress)
    return window


def add_lessons_menu(window: "MainWindow") -> None:
    """A "Lessons" menu listing ``lessons/index.toml``: choosing one opens it in a new
    window (with its own machine) in place of this one."""
    menu = window.menuBar().addMenu("&Lessons")
    try:
        entries = load_index()
    except SandboxError as e:
        menu.addAction(f"(cannot read the lessons: {e})").setEnabled(False)
        return
    for entry in entries:
        action = QAction(f"{entry.number}. {entry.title}", window)
        action.setToolTip(entry.summary)
        action.setEnabled(entry.available)
        action.triggered.connect(lambda _=False, n=entry.number: switch_to_lesson(window, n))
        menu.addAction(action)
    window.lessons_menu = menu


def switch_to_lesson(window: "MainWindow", number: int) -> "MainWindow | None":
    try:
        new = open_lesson_window(number, window.state.layout)
    except SandboxError as e:
        window.statusBar().showMessage(f"error: {e}", 8000)
        return None
    new.resize(window.size())
    _WINDOWS.append(new)
    new.start()
    new.show()
    window.close()
    return new
