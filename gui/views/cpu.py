"""Registers and the code around the instruction pointer of the inspected vCPU.
Registers that changed since the previous snapshot are shown in red."""
from __future__ import annotations

import html

from PySide6.QtGui import QFont
from PySide6.QtWidgets import QLabel, QTextEdit, QVBoxLayout, QWidget

from gui.disasm import around
from gui.state import ExplorerState
from gui.theme import MONO_FAMILY

REG_ROWS = (("eax", "ebx", "ecx", "edx"), ("esi", "edi", "ebp", "esp"), ("eip", "eflags"),
            ("cs", "ds", "es", "ss"), ("fs", "gs"), ("cr0", "cr2", "cr3", "cr4"))
SEGMENT_REGS = {"cs", "ds", "es", "fs", "gs", "ss"}
FLAGS = ((0, "CF"), (2, "PF"), (4, "AF"), (6, "ZF"), (7, "SF"), (8, "TF"), (9, "IF"), (10, "DF"), (11, "OF"))


def flags_text(eflags: int) -> str:
    return " ".join(name for bit, name in FLAGS if eflags >> bit & 1) or "-"


class CpuView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        mono = QFont(MONO_FAMILY, 10)
        self.summary = QLabel()
        self.regs = QLabel()
        self.regs.setFont(mono)
        self.code = QTextEdit()
        self.code.setReadOnly(True)
        self.code.setFont(mono)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.regs)
        layout.addWidget(QLabel("<b>code around the instruction pointer</b> (capstone)"))
        layout.addWidget(self.code, 1)
        self._detail = None
        self._previous: dict[str, int] = {}
        self.lines = []

    def refresh(self) -> None:
        d = self.state.detail()
        if d is self._detail:
            return
        if d is not None and self._detail is not None and d.regs == self._detail.regs and d.code == self._detail.code:
            self._detail = d
            return
        before = self._detail.regs if self._detail is not None and d is not None and self._detail.vm == d.vm else {}
        self._detail = d
        if d is None:
            self.summary.setText("no vCPU to inspect (power the VM on)")
            self.regs.setText("")
            self.code.setPlainText("")
            self.lines = []
            return
        self.summary.setText(f"<b>{d.vm}/vcpu{d.vcpu}</b>: {d.mode} mode, "
                             f"{d.instructions:,} instructions retired")
        rows = []
        for names in REG_ROWS:
            cells = []
            for name in names:
                value = d.regs.get(name, 0)
                width = 4 if name in SEGMENT_REGS else 8
                colour = "#dc2626" if before and before.get(name) != value else "#111827"
                cells.append(f"<span style='color:#6b7280'>{name:>6}</span> "
                             f"<span style='color:{colour}'>{value:0{width}x}</span>")
            rows.append("&nbsp;".join(cells).replace("  ", "&nbsp;&nbsp;"))
        rows.append(f"<span style='color:#6b7280'>flags</span> {flags_text(d.regs.get('eflags', 0))}")
        self.regs.setText("<br>".join(rows))
        self.lines = around(d.code, d.code_base, d.pc, 16 if d.mode == "real" else 32)
        out = []
        for line in self.lines:
            text = html.escape(f"{line.address:08x}  {line.raw.hex(' '):<21} {line.text}")
            out.append(f"<div style='background:#fde68a'><b>&#9654; {text}</b></div>" if line.is_pc
                       else f"<div>&nbsp;&nbsp;{text}</div>")
        self.code.setHtml("<pre style='margin:0'>" + "".join(out) + "</pre>" if out
                          else "<i>code not readable here</i>")
