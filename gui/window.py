"""The main window: diagram on the left, workflow and inspector on the right, plots and
the event log below. One timer drains the facade and refreshes every view. A lesson
(``gui/lesson_dock.py``) docks its panel at the right."""
from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QMainWindow, QSplitter, QTabWidget

from gui.facade import MachineFacade
from gui.lesson_dock import add_lessons_menu
from gui.state import ExplorerState
from gui.views.architecture import ArchitectureView
from gui.views.eventlog import EventLogView
from gui.views.inspector import InspectorView
from gui.views.plots import PlotsView
from gui.views.speed import SpeedBar
from gui.views.workflow import WorkflowPanel

REFRESH_HZ = 40              # the target is >= 30 refreshes a second, with a margin


class MainWindow(QMainWindow):
    def __init__(self, facade: MachineFacade, layout: str = "beginner") -> None:
        super().__init__()
        self.facade = facade
        self.state = ExplorerState(facade, layout)
        self.setWindowTitle(f"Virtualization Sandbox - {facade.config.source}")
        self.speed = SpeedBar(self.state)
        self.addToolBar(self.speed)
        self.architecture = ArchitectureView(self.state)
        self.workflow = WorkflowPanel(self.state)
        self.inspector = InspectorView(self.state)
        self.plots = PlotsView(self.state, columns=4)
        self.log = EventLogView(self.state)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.workflow)
        right.addWidget(self.inspector)
        right.setSizes([270, 450])
        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.architecture)
        top.addWidget(right)
        top.setSizes([1000, 600])
        self.bottom = QTabWidget()
        self.bottom.addTab(self.plots, "Plots")
        self.bottom.addTab(self.log, "Event log")
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.bottom)
        main.setSizes([700, 270])
        self.setCentralWidget(main)
        self.views = (self.speed, self.architecture, self.workflow, self.inspector, self.plots, self.log)
        self.timer = QTimer(self)
        self.timer.setInterval(1000 // REFRESH_HZ)
        self.timer.timeout.connect(self.refresh)
        self.lesson_panel = None          # set by gui.lesson_dock.dock_lesson
        add_lessons_menu(self)
        self.resize(1600, 1000)

    def start(self) -> None:
        self.timer.start()

    def refresh(self) -> None:
        """One frame: drain the machine's output and redraw what changed."""
        self.state.update()
        if self.state.changed or self.architecture.animating:
            for view in self.views:
                view.refresh()
        for message in self.state.new_messages:
            self.statusBar().showMessage(message, 8000)
        self.state.end_frame()

    def highlight(self, names: list) -> None:
        """For the lesson panel (``gui/lesson_dock.py``): outline these parts of the diagram."""
        self.state.highlight(names)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        self.timer.stop()
        self.facade.close()
        super().closeEvent(event)
