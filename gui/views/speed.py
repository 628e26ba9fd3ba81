"""The run controls: power on everything, single step / slow motion / full speed, the
Step button, the diagram layout, the guest clock and the refresh rate."""
from __future__ import annotations

from PySide6.QtGui import QAction, QActionGroup, QFont
from PySide6.QtWidgets import QComboBox, QLabel, QToolBar

from gui.layouts import LAYOUTS
from gui.speeds import SPEEDS
from gui.state import ExplorerState


class SpeedBar(QToolBar):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__("Run")
        self.state = state
        self.setMovable(False)
        power = self.addAction("Power on all")
        power.setToolTip("Power on every VM that is not on yet.")
        power.triggered.connect(lambda: state.facade.power_on(None))
        self.addSeparator()
        self.addWidget(QLabel(" Speed: "))
        self.group = QActionGroup(self)
        self.actions_: dict[str, QAction] = {}
        for name, speed in SPEEDS.items():
            action = QAction(speed.label, self, checkable=True)
            action.setToolTip(speed.description)
            action.triggered.connect(lambda _=False, n=name: state.facade.set_speed(n))
            self.group.addAction(action)
            self.addAction(action)
            self.actions_[name] = action
        step = self.addAction("Step")
        step.setToolTip("Execute one instruction of the inspected vCPU (pauses the machine).")
        step.triggered.connect(self.step)
        self.addSeparator()
        self.addWidget(QLabel(" Diagram: "))
        self.layout_box = QComboBox()
        for name, description in LAYOUTS.items():
            self.layout_box.addItem(name)
            self.layout_box.setItemData(self.layout_box.count() - 1, description, 3)
        self.layout_box.setCurrentText(state.layout)
        self.layout_box.currentTextChanged.connect(state.set_layout)
        self.addWidget(self.layout_box)
        self.addSeparator()
        self.clock = QLabel()
        self.clock.setFont(QFont(self.font().family(), 11, QFont.Weight.Bold))
        self.addWidget(self.clock)

    _speed = None

    def step(self) -> None:
        if self.state.selected_vm:
            self.state.facade.step(self.state.selected_vm, self.state.selected_vcpu)

    def refresh(self) -> None:
        snap = self.state.snapshot
        if snap is None or self.state.frame % 8 and snap.speed == self._speed:
            return                      # the clock label changes a few times a second
        self._speed = snap.speed
        action = self.actions_.get(snap.speed)
        if action is not None and not action.isChecked():
            action.setChecked(True)
        mode = "deterministic" if snap.deterministic else "wall clock"
        self.clock.setText(f"  guest time {snap.now_ns / 1e9:8.3f} s  ({mode}, {snap.backend})"
                           f"   |   {self.state.fps:4.1f} refreshes/s  ")
