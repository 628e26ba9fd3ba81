"""The architecture view: the seed diagram's three layers, live.

Built from the layout tables (``gui.layouts``) for the current layout; refreshed from
the newest snapshot each frame: vCPU chips, what each physical CPU runs, the host
RAM frame map, texts. New events flash the place where they happened
(``gui.places``) and animate flows as fading arrows; the event clicked in the log
stays outlined.
"""
from __future__ import annotations

import time

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

from gui import places as P
from gui.layouts import HARDWARE, HYPERVISOR, VM_ROWS, Element, visible
from gui.snapshot import FOREIGN, FREE, SHARED
from gui.state import ExplorerState
from gui.theme import (FOREIGN_COLOUR, FREE_COLOUR, LAYER_COLOURS, LAYER_TITLES, SHARED_COLOUR,
                       VCPU_STATE_COLOURS, VM_STATE_COLOURS, owner_colour)
from gui.views.diagram_items import BAND_FONT, Block, FlowArrow, RamBlock

WIDTH = 900.0
MARGIN = 12.0
GAP = 10.0
BAND_TITLE = 30.0
FLASH_S = 1.2
MAX_ARROWS = 24
EVENTS_PER_FRAME = 200          # newest events animated per frame (a flood is summarised)
TEXT_PERIOD_S = 0.2             # texts and chips change at most 5 times a second (flashes: every frame)


class ArchitectureView(QGraphicsView):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.TextAntialiasing)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setBackgroundBrush(QColor("#ffffff"))
        self.blocks: dict[str, Block] = {}
        self.elements: dict[str, Element] = {}
        self.flashes: dict[str, float] = {}
        self.arrows: dict[tuple[str, str], FlowArrow] = {}
        self._texts_due = 0.0
        self._selected: set[str | None] = set()
        self.port_device = {port: spec.name for spec in state.facade.devices
                            for base, n, _ in spec.windows for port in range(base, base + n)}
        self.build()

    # --- building the scene from the layout tables ----------------------------------------------
    def build(self) -> None:
        scene = self.scene()
        scene.clear()
        self.blocks.clear()
        self.elements.clear()
        self.arrows.clear()
        layout = self.state.layout
        y = self._vm_band(0.0, layout)
        y = self._host_band("hypervisor", HYPERVISOR, y + GAP, 165.0, layout)
        y = self._host_band("hardware", HARDWARE, y + GAP, 250.0, layout)
        scene.setSceneRect(QRectF(0, 0, WIDTH, y))
        self.fit()

    def _band(self, layer: str, y: float, height: float) -> None:
        fill, border, _ = LAYER_COLOURS[layer]
        band = Block(f"band.{layer}", QRectF(0, y, WIDTH, height), "", fill, border)
        band.setZValue(-10)
        self.scene().addItem(band)
        self.blocks[band.key] = band
        label = QGraphicsSimpleTextItem(LAYER_TITLES[layer])
        label.setFont(BAND_FONT)
        label.setBrush(QColor(border))
        label.setPos(MARGIN, y + 5)
        self.scene().addItem(label)

    def _add(self, key: str, rect: QRectF, element: Element | None, title: str, layer: str,
             cls=Block, inner: bool = False) -> Block:
        fill, border, _ = LAYER_COLOURS[layer]
        block = cls(key, rect, title, "#ffffff" if inner else fill, border)
        if element is not None:
            block.setToolTip(element.description)
            self.elements[key] = element
        self.scene().addItem(block)
        self.blocks[key] = block
        return block

    def _vm_band(self, y0: float, layout: str) -> float:
        rows = visible(VM_ROWS, layout)
        names = self.state.vm_names or ("(no VM)",)
        height = BAND_TITLE + 32 + sum(r.height + 6 for r in rows) + MARGIN
        self._band("vm", y0, height)
        width = (WIDTH - 2 * MARGIN - (len(names) - 1) * GAP) / len(names)
        for i, name in enumerate(names):
            x = MARGIN + i * (width + GAP)
            top = y0 + BAND_TITLE
            box = self._add(f"vm.{name}", QRectF(x, top, width, height - BAND_TITLE - MARGIN + 2), None,
                            name, "vm")
            box.fill = QColor("#d3f0dc")
            box.setToolTip(f"VM {name}: click to inspect it")
            y = top + 30
            for row in rows:
                self._add(f"vm.{name}.{row.key}", QRectF(x + 6, y, width - 12, row.height), row,
                          row.title, "vm", inner=True)
                y += row.height + 6
        return y0 + height

    def _host_band(self, layer: str, elements: tuple[Element, ...], y0: float, height: float, layout: str) -> float:
        self._band(layer, y0, height)
        shown = visible(elements, layout)
        total = sum(e.height for e in shown)
        width = WIDTH - 2 * MARGIN - (len(shown) - 1) * GAP
        x = MARGIN
        for element in shown:
            w = width * element.height / total
            rect = QRectF(x, y0 + BAND_TITLE, w, height - BAND_TITLE - MARGIN)
            if element.kind == "pcpus":
                self._pcpus(element, rect, layer)
            else:
                self._add(element.key, rect, element, element.title, layer,
                          RamBlock if element.kind == "ram" else Block, inner=True)
            x += w + GAP
        return y0 + height

    def _pcpus(self, element: Element, rect: QRectF, layer: str) -> None:
        self._add(element.key, rect, element, element.title, layer, inner=True)
        n = max(1, self.state.facade.host_cpus)
        cols = 1 if n <= 2 else 2
        rows = -(-n // cols)
        cw = (rect.width() - 12 - (cols - 1) * 6) / cols
        ch = min(64.0, (rect.height() - 30 - (rows - 1) * 6) / rows)
        for i in range(n):
            r, c = divmod(i, cols)
            cell = QRectF(rect.x() + 6 + c * (cw + 6), rect.y() + 26 + r * (ch + 6), cw, ch)
            block = self._add(f"hw.pcpu.{i}", cell, None, f"CPU {i}", layer)
            block.setToolTip("A physical CPU (core) of the host.")

    def fit(self) -> None:
        self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt API)
        super().resizeEvent(event)
        self.fit()

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt API)
        for item in self.items(event.position().toPoint()):
            key = getattr(item, "key", "")
            parts = key.split(".")
            if parts[0] == "vm" and len(parts) > 1:
                self.state.select_vm(parts[1])
                break
        super().mousePressEvent(event)

    @property
    def animating(self) -> bool:
        """Flashes or arrows are fading: the diagram needs frames even when nothing is new."""
        return bool(self.flashes or self.arrows)

    # --- refreshing -------------------------------------------------------------------------------
    def refresh(self) -> None:
        state = self.state
        if state.layout_changed:
            self.build()
        snap = state.snapshot
        now = time.monotonic()
        if snap is not None and (now >= self._texts_due or state.layout_changed):
            self._texts_due = now + TEXT_PERIOD_S
            self._texts(snap)
            self._vms(snap)
            self._host(snap)
        for ev in state.new_events[-EVENTS_PER_FRAME:]:
            self._event(ev, now)
        self._animate(now)
        selected = {P.resolve(k, self.blocks) for k in state.selected_places}
        if selected != self._selected or state.layout_changed:
            self._selected = selected
            for key, block in self.blocks.items():
                block.set_selected(key in selected)

    def _texts(self, snap) -> None:
        for key, element in self.elements.items():
            vm = snap.vm(key.split(".")[1]) if key.startswith("vm.") else None
            self.blocks[key].set_lines(element.lines(snap, vm))

    def _vms(self, snap) -> None:
        pcpu_of = {p.vcpu: p.index for p in snap.pcpus if p.vcpu}
        for vm in snap.vms:
            box = self.blocks.get(f"vm.{vm.name}")
            if box is None:
                continue
            box.set_badge((vm.state.replace("_", " "), VM_STATE_COLOURS.get(vm.state, "#6b7280")))
            cpus = self.blocks.get(f"vm.{vm.name}.vcpus")
            if cpus is not None:
                chips = []
                for c in vm.vcpus:
                    where = pcpu_of.get(f"{vm.name}/vcpu{c.index}")
                    label = f"vcpu{c.index} {c.state}" + (f" on CPU {where}" if where is not None else "")
                    chips.append((label, VCPU_STATE_COLOURS.get(c.state, "#e5e7eb")))
                cpus.set_chips(chips)

    def _host(self, snap) -> None:
        names = self.state.vm_names
        colour_of = {name: owner_colour(i) for i, name in enumerate(names)}
        for p in snap.pcpus:
            block = self.blocks.get(f"hw.pcpu.{p.index}")
            if block is None:
                continue
            busy = 100.0 * p.busy_ns / snap.now_ns if snap.now_ns else 0.0
            block.set_lines([f"runs {p.vcpu}" if p.vcpu else "idle", f"busy {busy:.0f}% since start"])
            fill = QColor(colour_of.get(p.vcpu.split("/")[0], "#dddddd")).lighter(165) if p.vcpu else QColor("#f3f4f6")
            if fill != block.fill:
                block.fill = fill
                block.update()
        sched = self.blocks.get("hv.scheduler")
        if sched is not None:
            running = {p.vcpu for p in snap.pcpus if p.vcpu}
            sched.set_chips([(name, colour_of.get(name.split("/")[0], "#ddd") if name not in running
                              else VCPU_STATE_COLOURS["running"]) for name in snap.runqueue]
                            or [("(empty)", "#f3f4f6")])
        ram = self.blocks.get("hw.ram")
        if isinstance(ram, RamBlock) and getattr(ram, "_source", None) is not snap.ram:
            ram._source = snap.ram
            table = [QColor(FREE_COLOUR).rgb()] * 256
            for i, name in enumerate(snap.ram.names):
                table[i + 1] = QColor(owner_colour(i)).rgb()
            table[SHARED] = QColor(SHARED_COLOUR).rgb()
            table[FOREIGN] = QColor(FOREIGN_COLOUR).rgb()
            table[FREE] = QColor(FREE_COLOUR).rgb()
            ram.set_frames(snap.ram.owners, table)
            dot = f"1 dot = {ram.per_dot} frame{'s' if ram.per_dot > 1 else ''}"
            ram.set_legend([(n, owner_colour(i)) for i, n in enumerate(snap.ram.names)]
                           + [("shared", SHARED_COLOUR), ("free", FREE_COLOUR), (dot, "#ffffff")])
        devices = self.blocks.get("hv.devices")
        if devices is not None and self.state.layout == "advanced":
            devices.set_lines([])
            lit = {k for k, until in self.flashes.items() if k.startswith("dev.")}
            devices.set_chips([(spec.name, "#fcd34d" if f"dev.{spec.name}" in lit else "#ffffff")
                               for spec in self.state.facade.devices])

    def _event(self, ev, now: float) -> None:
        for key in P.places(ev):
            target = P.resolve(key, self.blocks)
            if target is not None:
                self.flashes[target] = now + FLASH_S
        if ev.kind == "exit.io" and ev.data.get("port") in self.port_device:
            self.flashes[f"dev.{self.port_device[ev.data['port']]}"] = now + FLASH_S / 2
        f = P.flow(ev)
        if f is None or ev.vm not in (None, self.state.selected_vm):
            return                      # arrows follow the inspected VM only: fewer, clearer
        src, dst = P.resolve(f[0], self.blocks), P.resolve(f[1], self.blocks)
        if src is None or dst is None or src == dst:
            return
        arrow = self.arrows.get((src, dst))
        if arrow is not None:
            arrow.renew(now)
            return
        if len(self.arrows) >= MAX_ARROWS:
            oldest = min(self.arrows, key=lambda k: self.arrows[k].born)
            self.scene().removeItem(self.arrows.pop(oldest))
        a, b = self.blocks[src], self.blocks[dst]
        layer = ev.layer.value
        arrow = FlowArrow(a.anchor(b.rect.center()), b.anchor(a.rect.center()), f[2], LAYER_COLOURS[layer][2], now)
        self.scene().addItem(arrow)
        self.arrows[(src, dst)] = arrow

    def _animate(self, now: float) -> None:
        for key in list(self.flashes):
            left = self.flashes[key] - now
            block = self.blocks.get(key)
            if left <= 0:
                del self.flashes[key]
                if block is not None:
                    block.set_flash(0.0)
            elif block is not None:
                block.set_flash(left / FLASH_S)
        for pair in list(self.arrows):
            arrow = self.arrows[pair]
            age = arrow.age(now)
            if age >= 1.0:
                self.scene().removeItem(self.arrows.pop(pair))
            else:
                arrow.setOpacity(1.0 if age < 0.5 else 2 * (1.0 - age))
