"""The power-on workflow panel: the seed's steps for the selected VM, each lit when
its event arrives, with the guest clock and the event's one-sentence explanation."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from sandbox.events import EVENT_KINDS

from gui.state import WORKFLOW_STEPS, ExplorerState
from gui.theme import LAYER_COLOURS

PENDING = QColor("#9ca3af")
NEWEST_S = 1.5          # the step that just arrived stays emphasised this long


def format_time(ns: int) -> str:
    return f"{ns / 1e6:,.3f} ms"


class WorkflowPanel(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.title = QLabel()
        self.title.setFont(QFont(self.font().family(), 11, QFont.Weight.Bold))
        self.table = QTableWidget(len(WORKFLOW_STEPS), 3)
        self.table.setHorizontalHeaderLabels(["step", "guest clock", "what happened"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        self.table.setWordWrap(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        for row, (kind, title) in enumerate(WORKFLOW_STEPS):
            self.table.setItem(row, 0, QTableWidgetItem(f"{row + 1}. {title}"))
            self.table.setItem(row, 1, QTableWidgetItem(""))
            item = QTableWidgetItem(EVENT_KINDS[kind].description)
            item.setToolTip(kind)
            self.table.setItem(row, 2, item)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        self._shown: tuple | None = None
        self._arrived: dict[str, float] = {}

    def lit_steps(self) -> list[str]:
        """The kinds lit for the selected VM, in panel order (tests read this)."""
        done = self.state.workflow.get(self.state.selected_vm or "", {})
        return [kind for kind, _ in WORKFLOW_STEPS if kind in done]

    def refresh(self) -> None:
        state = self.state
        now = time.monotonic()
        for ev in state.new_events:
            if ev.vm == state.selected_vm and ev.kind in state.workflow.get(ev.vm, {}):
                self._arrived[ev.kind] = now
        done = state.workflow.get(state.selected_vm or "", {})
        newest = {k for k, t in self._arrived.items() if now - t < NEWEST_S}
        key = (state.selected_vm, tuple(sorted(done)), tuple(sorted(newest)))
        if key == self._shown:
            return
        self._shown = key
        vm = state.vm_view()
        self.title.setText(f"Power-on workflow of {state.selected_vm or '-'}"
                           + (f"  ({vm.state.replace('_', ' ')})" if vm is not None else ""))
        bold = QFont(self.font())
        bold.setBold(True)
        for row, (kind, _) in enumerate(WORKFLOW_STEPS):
            ev = done.get(kind)
            colour = QColor(LAYER_COLOURS[EVENT_KINDS[kind].layer.value][0])
            for col in range(3):
                item = self.table.item(row, col)
                item.setForeground(QBrush(QColor("#111827") if ev else PENDING))
                item.setBackground(QBrush(QColor("#fde68a") if kind in newest else colour if ev else QColor("white")))
                item.setFont(bold if kind in newest else self.font())
            skipped = ev is None and kind == "power.network_attached" and "power.running" in done
            if skipped:
                self.table.item(row, 1).setText("skipped")
                self.table.item(row, 2).setText("This VM has no virtual NIC: nothing to plug into the switch.")
            mark = "\u2713 " if ev else ""
            self.table.item(row, 0).setText(f"{mark}{row + 1}. {WORKFLOW_STEPS[row][1]}")
            if not skipped:
                self.table.item(row, 1).setText(format_time(ev.time_ns) if ev else "")
                self.table.item(row, 2).setText(EVENT_KINDS[kind].description)
            self.table.item(row, 1).setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if ev is not None:
                self.table.item(row, 2).setToolTip(f"{kind}: {ev.data}")
        self.table.resizeRowsToContents()
