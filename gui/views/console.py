"""The serial console of the selected VM: what the guest wrote to COM1, and a place
to type. Keys typed into the text area go straight to the guest; the line below
sends a whole line."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QFont, QTextCursor
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QVBoxLayout, QWidget

from gui.state import ExplorerState
from gui.theme import MONO_FAMILY

KEYS = {Qt.Key.Key_Return: "\n", Qt.Key.Key_Enter: "\n", Qt.Key.Key_Backspace: "\b",
        Qt.Key.Key_Tab: "\t", Qt.Key.Key_Escape: "\x1b"}


class ConsoleText(QPlainTextEdit):
    def __init__(self, send) -> None:
        super().__init__()
        self.send = send
        self.setReadOnly(True)
        self.setMaximumBlockCount(5000)
        self.setFont(QFont(MONO_FAMILY, 10))
        self.setStyleSheet("QPlainTextEdit { background: #0f172a; color: #e2e8f0; }")

    def keyPressEvent(self, event) -> None:  # noqa: N802 (Qt API)
        text = KEYS.get(event.key()) or event.text()
        if text and (text.isprintable() or text in KEYS.values()):
            self.send(text)
        else:
            super().keyPressEvent(event)


class ConsoleView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.text = ConsoleText(self.send)
        self.input = QLineEdit()
        self.input.setPlaceholderText("type a line for the guest and press Enter (or type in the console above)")
        self.input.returnPressed.connect(self._send_line)
        row = QHBoxLayout()
        row.addWidget(QLabel("input:"))
        row.addWidget(self.input)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.text)
        layout.addLayout(row)
        self._vm: str | None = None

    def send(self, text: str) -> None:
        if self.state.selected_vm:
            self.state.facade.feed(self.state.selected_vm, text)

    def _send_line(self) -> None:
        self.send(self.input.text() + "\n")
        self.input.clear()

    def refresh(self) -> None:
        vm = self.state.selected_vm
        if vm != self._vm:
            self._vm = vm
            self.text.setPlainText(self.state.consoles.get(vm, "") if vm else "")
        else:
            new = self.state.console_new.get(vm or "")
            if not new:
                return
            cursor = self.text.textCursor()
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertText(new)
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        self.text.ensureCursorVisible()
