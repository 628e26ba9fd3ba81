"""The event log: every recorded event, filterable by VM, layer and kind. Clicking an
event outlines where it happened on the diagram."""
from __future__ import annotations

from collections import deque

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QHeaderView, QLabel, QTableView,
                               QVBoxLayout, QWidget)

from sandbox.events import EVENT_KINDS, Event, Layer

from gui.state import ExplorerState
from gui.theme import LAYER_COLOURS

LOG_ROWS = 20_000
COLUMNS = ("guest time", "VM", "layer", "kind", "details")
ANY = "(any)"
HEX_FIELDS = frozenset({"port", "eip", "entry", "hfn", "gfn", "old_hfn", "addr", "gpa", "vector", "value"})


def details(ev: Event) -> str:
    parts = []
    for k, v in ev.data.items():
        if isinstance(v, int) and not isinstance(v, bool) and k in HEX_FIELDS:
            v = hex(v)
        parts.append(f"{k}={v}")
    return ", ".join(parts)


class EventTableModel(QAbstractTableModel):
    """The filtered events as rows; appends cheaply, drops the oldest past LOG_ROWS."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: deque[Event] = deque()
        self.vm: str | None = None
        self.layer: str | None = None
        self.kind: str | None = None

    def accepts(self, ev: Event) -> bool:
        return ((self.vm is None or ev.vm == self.vm) and (self.kind is None or ev.kind == self.kind)
                and (self.layer is None or EVENT_KINDS[ev.kind].layer.value == self.layer))

    def reset_rows(self, events) -> None:
        self.beginResetModel()
        self.rows = deque([e for e in events if self.accepts(e)][-LOG_ROWS:])
        self.endResetModel()

    def append(self, events: list[Event]) -> None:
        new = [e for e in events if self.accepts(e)][-LOG_ROWS:]
        if not new:
            return
        overflow = len(self.rows) + len(new) - LOG_ROWS
        if overflow > 0:
            self.beginRemoveRows(QModelIndex(), 0, overflow - 1)
            for _ in range(overflow):
                self.rows.popleft()
            self.endRemoveRows()
        first = len(self.rows)
        self.beginInsertRows(QModelIndex(), first, first + len(new) - 1)
        self.rows.extend(new)
        self.endInsertRows()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 (Qt API)
        return len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802 (Qt API)
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return COLUMNS[section]
        return None

    def data(self, index, role=Qt.ItemDataRole.DisplayRole):
        ev = self.rows[index.row()]
        col = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (f"{ev.time_ns / 1e6:,.3f} ms", ev.vm or "host", EVENT_KINDS[ev.kind].layer.value,
                    ev.kind, details(ev))[col]
        if role == Qt.ItemDataRole.BackgroundRole and col == 2:
            return QBrush(QColor(LAYER_COLOURS[EVENT_KINDS[ev.kind].layer.value][0]))
        if role == Qt.ItemDataRole.ToolTipRole:
            return EVENT_KINDS[ev.kind].description
        return None


class EventLogView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.model = EventTableModel()
        self.vm = self._combo([ANY, *state.vm_names])
        self.layer = self._combo([ANY, *(layer.value for layer in Layer)])
        self.kind = self._combo([ANY, *sorted(EVENT_KINDS)])
        self.frequent = QCheckBox("record frequent kinds too (I/O exits, interrupts, scheduling: slower)")
        self.frequent.toggled.connect(state.facade.trace_frequent)
        self.count = QLabel()
        top = QHBoxLayout()
        for label, combo in (("VM", self.vm), ("layer", self.layer), ("kind", self.kind)):
            top.addWidget(QLabel(label))
            top.addWidget(combo)
        top.addWidget(self.frequent)
        top.addStretch(1)
        top.addWidget(self.count)
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(20)
        header = self.table.horizontalHeader()
        for col, width in enumerate((110, 80, 90, 170)):
            self.table.setColumnWidth(col, width)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.clicked.connect(self.on_click)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addLayout(top)
        layout.addWidget(self.table)

    def _combo(self, items: list[str]) -> QComboBox:
        combo = QComboBox()
        combo.addItems(items)
        combo.currentTextChanged.connect(self.apply_filter)
        return combo

    def apply_filter(self) -> None:
        pick = lambda c: None if c.currentText() == ANY else c.currentText()  # noqa: E731
        self.model.vm, self.model.layer, self.model.kind = pick(self.vm), pick(self.layer), pick(self.kind)
        self.model.reset_rows(self.state.events)

    def on_click(self, index) -> None:
        self.select_row(index.row())

    def select_row(self, row: int) -> None:
        ev = self.model.rows[row]
        self.state.select_event(ev)
        if ev.vm in self.state.vm_names:
            self.state.select_vm(ev.vm)

    def refresh(self) -> None:
        new = self.state.new_events
        if not new:
            return
        bar = self.table.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.model.append(new)
        self.count.setText(f"{len(self.model.rows):,} shown / {len(self.state.events):,} recorded")
        if at_end:
            self.table.scrollToBottom()
