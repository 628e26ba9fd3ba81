"""The VGA text screen of the selected VM: 80x25 cells in the adapter's 16 colours."""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.state import ExplorerState
from gui.theme import MONO_FAMILY

# The standard CGA/VGA text palette, used until the VM's own DAC is known.
DEFAULT_PALETTE = ((0, 0, 0), (0, 0, 170), (0, 170, 0), (0, 170, 170), (170, 0, 0), (170, 0, 170),
                   (170, 85, 0), (170, 170, 170), (85, 85, 85), (85, 85, 255), (85, 255, 85),
                   (85, 255, 255), (255, 85, 85), (255, 85, 255), (255, 255, 85), (255, 255, 255))


LEFT_CENTRE = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter


class VgaView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.font_ = QFont(MONO_FAMILY, 9)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.screen = None
        self.cursor = (0, 0)
        self.palette_ = DEFAULT_PALETTE

    def refresh(self) -> None:
        d = self.state.detail()
        screen = d.screen if d is not None else None
        if screen is not self.screen and screen != self.screen:
            self.screen = screen
            self.cursor = d.cursor if d is not None else (0, 0)
            self.palette_ = (d.palette if d is not None and len(d.palette) == 16 else DEFAULT_PALETTE)
            self.update()

    def text(self) -> list[str]:
        return ["".join(ch for ch, _ in row) for row in self.screen] if self.screen else []

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt API)
        p = QPainter(self)
        p.fillRect(self.rect(), QColor("black"))
        if not self.screen:
            p.setPen(QColor("#9ca3af"))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "no screen (VM not powered on)")
            return
        rows, cols = len(self.screen), len(self.screen[0])
        # A VGA text cell is 9x16 pixels: keep that shape, centred in the widget.
        cw = min(self.width() / cols, self.height() / rows * 9 / 16)
        ch = cw * 16 / 9
        x0, y0 = (self.width() - cw * cols) / 2, (self.height() - ch * rows) / 2
        font = QFont(self.font_)
        font.setPixelSize(max(6, int(ch * 0.8)))
        p.setFont(font)
        colours = [QColor(*rgb) for rgb in self.palette_]
        for r, row in enumerate(self.screen):
            y = y0 + r * ch
            for c, (char, attr) in enumerate(row):
                x = x0 + c * cw
                bg = (attr >> 4) & 0x7
                if bg:
                    p.fillRect(QRectF(x, y, cw + 0.5, ch + 0.5), colours[bg])
                if char != " " and char != "\x00":
                    p.setPen(colours[attr & 0x0F])
                    p.drawText(QRectF(x, y, cw * 2, ch), LEFT_CENTRE, char)
        row, col = self.cursor
        if 0 <= row < rows and 0 <= col < cols:
            p.fillRect(QRectF(x0 + col * cw, y0 + row * ch + ch * 0.8, cw, ch * 0.15), QColor("#e5e7eb"))
