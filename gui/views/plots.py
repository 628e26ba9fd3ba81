"""Plots (pyqtgraph), one per row of ``gui.metrics.PLOTS``: CPU received vs. entitled,
ready time, memory, exits per second.

Drawing plots is the costliest thing the window does, and the GUI thread shares the
interpreter with the machine's thread, so they are redrawn once a second (samples
are taken twice a second) every two seconds, with ranges set here rather than
by auto-range, and a series gets a curve only once it has been non-zero.
"""
from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from gui.metrics import VARIANT_STYLES, PlotSpec
from gui.state import ExplorerState
from gui.theme import owner_colour

STYLES = {"solid": Qt.PenStyle.SolidLine, "dash": Qt.PenStyle.DashLine, "dot": Qt.PenStyle.DotLine,
          "dashdot": Qt.PenStyle.DashDotLine}
KIND_COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563", "#ca8a04")
REDRAW_S = 2.0


class PlotsView(QWidget):
    def __init__(self, state: ExplorerState, columns: int = 2) -> None:
        super().__init__()
        self.state = state
        pg.setConfigOptions(antialias=False, background="w", foreground="#374151")
        grid = QGridLayout(self)
        grid.setContentsMargins(2, 2, 2, 2)
        key = "&nbsp;&nbsp;".join(f"<span style='color:{owner_colour(i)}'>&#9632;</span> {name}"
                                  for i, name in enumerate(state.vm_names))
        self.key = QLabel(f"<b>VMs:</b> {key}&nbsp;&nbsp;&nbsp;&nbsp;<b>lines:</b> solid = received / resident; "
                          "dashed = entitled / shared; dotted = swapped; dash-dot = ballooned")
        grid.addWidget(self.key, 0, 0, 1, columns)
        self.widgets: dict[str, pg.PlotWidget] = {}
        self.curves: dict[str, dict[tuple[str, str], pg.PlotDataItem]] = {}
        self.specs = {p.key: p for p in state.history.plots}
        for i, spec in enumerate(state.history.plots):
            w = pg.PlotWidget()
            w.setTitle(f"<b>{spec.title}</b>", size="10pt")
            w.setLabel("left", spec.y_label, units=spec.units or None)
            w.setLabel("bottom", "guest time", units="s")
            w.showGrid(x=True, y=True, alpha=0.25)
            w.disableAutoRange()
            if spec.legend:
                w.addLegend(offset=(-5, 5), labelTextSize="8pt", brush=(255, 255, 255, 200))
            w.setToolTip(spec.description)
            w.setMouseEnabled(x=False, y=False)
            w.hideButtons()
            grid.addWidget(w, 1 + i // columns, i % columns)
            self.widgets[spec.key] = w
            self.curves[spec.key] = {}
        self._kinds: dict[str, str] = {}
        self._drawn_at = 0.0
        self._drawn_samples = -1
        self._tops: dict[str, float] = {}
        self.redraws = 0

    def _pen(self, spec: PlotSpec, group: str, variant: str):
        if group in self.state.vm_names:
            colour = owner_colour(self.state.vm_names.index(group))
        else:
            colour = self._kinds.setdefault(group, KIND_COLOURS[len(self._kinds) % len(KIND_COLOURS)])
        return pg.mkPen(colour, width=2, style=STYLES[VARIANT_STYLES.get(variant, "solid")])

    def refresh(self, force: bool = False) -> None:
        history = self.state.history
        now = time.monotonic()
        if not force and (history.samples == self._drawn_samples or now - self._drawn_at < REDRAW_S
                          or not self.isVisible()):
            return
        if not history.times:
            return
        self._drawn_at, self._drawn_samples = now, history.samples
        self.redraws += 1
        x = np.fromiter(history.times, float, len(history.times))
        for key, table in history.values.items():
            spec, curves, top = self.specs[key], self.curves[key], 0.0
            for series, column in table.items():
                y = np.fromiter(column, float, len(column))
                peak = history.peaks[key].get(series, 0.0)
                curve = curves.get(series)
                if curve is None:
                    if not peak:
                        continue                      # all zero so far: no curve yet
                    group, variant = series
                    name = group.removeprefix("exit.") if variant == "rate" else f"{group} {variant}"
                    curve = self.widgets[key].plot([], [], pen=self._pen(spec, *series), name=name)
                    curves[series] = curve
                top = max(top, float(peak))
                curve.setData(x[-len(y):], y, connect="finite")
            w = self.widgets[key]
            w.setXRange(x[0], max(x[-1], x[0] + 1e-3), padding=0.02)
            top = top * 1.1 if top > 0 and math.isfinite(top) else 1.0
            if self._tops.get(key) != top:          # a new range repaints the axis: only on change
                self._tops[key] = top
                w.setYRange(0, top, padding=0)
