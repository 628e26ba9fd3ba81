"""The shapes the architecture diagram is drawn with: a box with a title and lines of
text (optionally chips, a frame map), and an arrow that fades out."""
from __future__ import annotations

import math

import numpy as np

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPainterPath, QPen, QPolygonF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsPathItem, QGraphicsSimpleTextItem

from gui.theme import HIGHLIGHT, MONO_FAMILY, SANS_FAMILY, SELECTED

TITLE_FONT = QFont(SANS_FAMILY, 11, QFont.Weight.Bold)
BODY_FONT = QFont(SANS_FAMILY, 10)
CHIP_FONT = QFont(SANS_FAMILY, 9, QFont.Weight.Bold)
MONO_FONT = QFont(MONO_FAMILY, 8)
BAND_FONT = QFont(SANS_FAMILY, 14, QFont.Weight.Bold)


def _mix(a: QColor, b: QColor, t: float) -> QColor:
    return QColor(int(a.red() + (b.red() - a.red()) * t), int(a.green() + (b.green() - a.green()) * t),
                  int(a.blue() + (b.blue() - a.blue()) * t))


class Block(QGraphicsItem):
    """A rounded box: title, a badge on the right, lines of text and coloured chips."""

    def __init__(self, key: str, rect: QRectF, title: str, fill: str, border: str,
                 title_font: QFont = TITLE_FONT) -> None:
        super().__init__()
        self.key = key
        self.rect = QRectF(rect)
        self.title = title
        self.fill = QColor(fill)
        self.border = QColor(border)
        self.title_font = title_font
        self.lines: list[str] = []
        self.chips: list[tuple[str, str]] = []     # (label, colour)
        self.badge: tuple[str, str] | None = None  # (text, colour)
        self.flash = 0.0                           # 0..1: an event just happened here
        self.selected = False                      # the event clicked in the log happened here
        self.mono = False
        # Painted once per change into a pixmap: repainting a neighbour only blits it.
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def boundingRect(self) -> QRectF:  # noqa: N802 (Qt API)
        return self.rect.adjusted(-3, -3, 3, 3)

    # --- setters that repaint only on change -------------------------------------------------
    def set_lines(self, lines: list[str]) -> None:
        if lines != self.lines:
            self.lines = list(lines)
            self.update()

    def set_chips(self, chips: list[tuple[str, str]]) -> None:
        if chips != self.chips:
            self.chips = list(chips)
            self.update()

    def set_badge(self, badge: tuple[str, str] | None) -> None:
        if badge != self.badge:
            self.badge = badge
            self.update()

    def set_flash(self, level: float) -> None:
        level = round(max(0.0, min(1.0, level)), 1)
        if level != self.flash:
            self.flash = level
            self.update()

    def set_selected(self, on: bool) -> None:
        if on != self.selected:
            self.selected = on
            self.update()

    # --- drawing -----------------------------------------------------------------------------------
    def paint(self, p: QPainter, option, widget=None) -> None:  # noqa: ARG002
        r = self.rect
        fill = _mix(self.fill, QColor("#fde68a"), self.flash * 0.8) if self.flash else self.fill
        pen = QPen(self.border, 1.5)
        if self.selected:
            pen = QPen(QColor(SELECTED), 4)
        elif self.flash:
            pen = QPen(_mix(self.border, QColor(HIGHLIGHT), self.flash), 1.5 + 2.5 * self.flash)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(pen)
        p.setBrush(QBrush(fill))
        p.drawRoundedRect(r, 7, 7)
        p.setPen(self.border.darker(130))
        p.setFont(self.title_font)
        p.drawText(QRectF(r.x() + 8, r.y() + 3, r.width() - 16, 22), Qt.AlignmentFlag.AlignLeft, self.title)
        y = r.y() + 25
        if self.badge:
            self._draw_badge(p)
        p.setFont(MONO_FONT if self.mono else BODY_FONT)
        p.setPen(QColor("#1f2937"))
        for line in self.lines:
            if y + 14 > r.bottom():
                break
            p.drawText(QRectF(r.x() + 8, y, r.width() - 14, 17), Qt.AlignmentFlag.AlignLeft, line)
            y += 17
        self.paint_body(p, y + 1)

    def _draw_badge(self, p: QPainter) -> None:
        text, colour = self.badge
        p.setFont(CHIP_FONT)
        w = p.fontMetrics().horizontalAdvance(text) + 14
        box = QRectF(self.rect.right() - w - 6, self.rect.y() + 5, w, 17)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(QColor(colour))
        p.drawRoundedRect(box, 8, 8)
        p.setPen(QColor("white"))
        p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    def paint_body(self, p: QPainter, y: float) -> float:
        """Chips, in rows; returns where the text lines start."""
        if not self.chips:
            return y
        p.setFont(CHIP_FONT)
        fm = p.fontMetrics()
        x = self.rect.x() + 8
        for label, colour in self.chips:
            w = fm.horizontalAdvance(label) + 12
            if x + w > self.rect.right() - 6 and x > self.rect.x() + 8:
                x = self.rect.x() + 8
                y += 22
            chip = QRectF(x, y, w, 19)
            p.setPen(QPen(QColor("#374151"), 1))
            p.setBrush(QColor(colour))
            p.drawRoundedRect(chip, 5, 5)
            p.setPen(QColor("#111827"))
            p.drawText(chip, Qt.AlignmentFlag.AlignCenter, label)
            x += w + 5
        return y + 24

    def anchor(self, towards: QPointF) -> QPointF:
        """Where an arrow to ``towards`` leaves this box: the middle of the nearest edge."""
        c = self.rect.center()
        if abs(towards.y() - c.y()) > abs(towards.x() - c.x()) * 0.4:
            return QPointF(c.x(), self.rect.top() if towards.y() < c.y() else self.rect.bottom())
        return QPointF(self.rect.left() if towards.x() < c.x() else self.rect.right(), c.y())


class RamBlock(Block):
    """Host RAM: one pixel-square per 4 KiB frame, one row per MiB, coloured by owner."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.image: QImage | None = None
        self.legend: list[tuple[str, str]] = []
        self.per_dot = 1
        self._data = b""

    DOT = 5.0        # scene units per dot of the frame map

    def set_frames(self, owners: bytes, colours: list[int]) -> None:
        """Draw the frame map: one dot per ``per_dot`` frames (a power of two chosen so
        the map fits the box); a dot shows the strongest owner among its frames
        (shared > other > a VM > free), so a used frame is never hidden by free ones."""
        cols = max(8, int((self.rect.width() - 16) // self.DOT))
        rows = max(2, int((self.rect.height() - 75) // self.DOT))
        per_dot = 1
        while len(owners) > cols * rows * per_dot:
            per_dot *= 2
        arr = np.frombuffer(owners, dtype=np.uint8)
        arr = np.concatenate([arr, np.zeros(-len(arr) % per_dot, np.uint8)]).reshape(-1, per_dot).max(axis=1)
        used_rows = max(1, math.ceil(len(arr) / cols))
        self._data = np.concatenate([arr, np.zeros(used_rows * cols - len(arr), np.uint8)]).tobytes()
        image = QImage(self._data, cols, used_rows, cols, QImage.Format.Format_Indexed8)
        image.setColorTable(colours)
        self.image = image
        self.per_dot = per_dot
        self.update()

    def set_legend(self, legend: list[tuple[str, str]]) -> None:
        if legend != self.legend:
            self.legend = legend
            self.update()

    def paint_body(self, p: QPainter, y: float) -> float:
        r = self.rect
        legend_h = 18 * max(1, math.ceil(len(self.legend) / 5))
        area = QRectF(r.x() + 8, y, r.width() - 16, r.bottom() - y - legend_h - 8)
        if self.image is not None and area.height() > 4:
            area = QRectF(area.x(), area.y(), self.image.width() * self.DOT, self.image.height() * self.DOT)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
            p.drawImage(area, self.image)
            p.setPen(QPen(QColor("#6b7280"), 1))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(area)
        p.setFont(BODY_FONT)
        fm = p.fontMetrics()
        x, ly = r.x() + 8, area.bottom() + 4
        for label, colour in self.legend:
            w = fm.horizontalAdvance(label) + 24
            if x + w > r.right() - 6:
                x, ly = r.x() + 8, ly + 18
            p.setPen(QPen(QColor("#374151"), 1))
            p.setBrush(QColor(colour))
            p.drawRect(QRectF(x, ly + 3, 11, 11))
            p.setPen(QColor("#1f2937"))
            p.drawText(QRectF(x + 15, ly, w, 16), Qt.AlignmentFlag.AlignLeft, label)
            x += w + 6
        return ly + 18


class FlowArrow(QGraphicsPathItem):
    """An arrow from one box to another with a label; fades out as it ages."""

    LIFETIME_S = 1.6

    def __init__(self, start: QPointF, end: QPointF, label: str, colour: str, born: float) -> None:
        super().__init__()
        self.born = born
        self.colour = QColor(colour)
        mid = (start + end) / 2
        bend = QPointF(-(end.y() - start.y()), end.x() - start.x()) * 0.12
        path = QPainterPath(start)
        path.quadTo(mid + bend, end)
        self.setPath(path)
        self.setPen(QPen(self.colour, 4, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        self.setZValue(10)
        angle = math.atan2(end.y() - (mid + bend).y(), end.x() - (mid + bend).x())
        head = QPolygonF([end, end - QPointF(math.cos(angle - 0.45), math.sin(angle - 0.45)) * 16,
                          end - QPointF(math.cos(angle + 0.45), math.sin(angle + 0.45)) * 16])
        self.head = QGraphicsPathItem(self)
        hp = QPainterPath()
        hp.addPolygon(head)
        self.head.setPath(hp)
        self.head.setBrush(self.colour)
        self.head.setPen(QPen(self.colour, 1))
        self.text = QGraphicsSimpleTextItem(label, self)
        self.text.setFont(CHIP_FONT)
        self.text.setBrush(QColor("#111827"))
        at = path.pointAtPercent(0.5)
        self.text.setPos(at + QPointF(6, -16))
        back = QGraphicsPathItem(self)
        bp = QPainterPath()
        bp.addRoundedRect(self.text.boundingRect().adjusted(-3, -1, 3, 1).translated(self.text.pos()), 4, 4)
        back.setPath(bp)
        back.setBrush(QColor(255, 255, 255, 220))
        back.setPen(QPen(self.colour, 1))
        back.setZValue(-1)
        self.text.setZValue(1)

    def age(self, now: float) -> float:
        return (now - self.born) / self.LIFETIME_S

    def renew(self, now: float) -> None:
        self.born = now
