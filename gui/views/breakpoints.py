"""Breakpoints panel: add one on an address, a port or an event kind; see which hit."""
from __future__ import annotations

from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)

from sandbox.errors import SandboxError

from gui.breakpoints import BREAKPOINT_KINDS, Breakpoint
from gui.state import ExplorerState


class BreakpointsView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.kind = QComboBox()
        for name, kind in BREAKPOINT_KINDS.items():
            self.kind.addItem(name, name)
            self.kind.setItemData(self.kind.count() - 1, kind.description, 3)   # tooltip role
        self.value = QLineEdit()
        self.value.setPlaceholderText("0x7c00, 0x3f8 or an event kind such as cpu.fault")
        self.scope = QComboBox()
        self.scope.addItem("any VM", None)
        for name in state.vm_names:
            self.scope.addItem(name, name)
        add = QPushButton("Add")
        add.clicked.connect(self.add_from_inputs)
        self.value.returnPressed.connect(self.add_from_inputs)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self.remove_selected)
        self.list = QListWidget()
        self.status = QLabel()
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        for w in (self.kind, self.value, self.scope, add):
            row.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(row)
        layout.addWidget(self.list)
        layout.addWidget(remove)
        layout.addWidget(self.status)
        self._shown: tuple = ()

    def add_from_inputs(self) -> None:
        try:
            bp = Breakpoint.parse(self.kind.currentData(), self.value.text(), self.scope.currentData())
        except SandboxError as e:
            self.status.setText(f"<span style='color:#dc2626'>{e}</span>")
            return
        self.state.facade.add_breakpoint(bp)
        self.value.clear()
        self.status.setText(BREAKPOINT_KINDS[bp.kind].description)

    def remove_selected(self) -> None:
        for item in self.list.selectedItems():
            self.state.facade.remove_breakpoint(item.data(32))

    def refresh(self) -> None:
        bps = tuple(self.state.facade.breakpoints)
        if bps != self._shown:
            self._shown = bps
            self.list.clear()
            for bp in bps:
                item = QListWidgetItem(bp.describe())
                item.setData(32, bp)
                self.list.addItem(item)
        snap = self.state.snapshot
        if snap is not None and snap.stopped_at:
            self.status.setText(f"<b>stopped:</b> {snap.stopped_at}")
