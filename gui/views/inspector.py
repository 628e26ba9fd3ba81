"""The per-VM inspector: the VM's controls, then tabs for its serial console, VGA
screen, CPU (registers and code) and breakpoints."""
from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QTabWidget, QVBoxLayout, QWidget

from gui.state import ExplorerState
from gui.views.breakpoints import BreakpointsView
from gui.views.console import ConsoleView
from gui.views.cpu import CpuView
from gui.views.vga import VgaView

# The VM buttons: (label, facade method, tooltip, VM states in which it is enabled).
VM_BUTTONS = (
    ("Power on", "power_on", "Run the power-on workflow; watch each step on the diagram.", {"created"}),
    ("Pause", "pause_vm", "Stop scheduling this VM; the others go on.", {"running"}),
    ("Resume", "resume_vm", "Schedule this VM again.", {"paused"}),
    ("Step", "step", "Pause the machine and execute one instruction of this vCPU.", {"running", "paused"}),
    ("Power off", "power_off", "Pull the plug of this VM.", {"running", "paused"}),
    ("Reset", "reset", "Press the reset button (also restarts a stopped VM).",
     {"running", "paused", "powered_off", "crashed", "timed_out"}),
    ("Crash", "crash", "Crash this VM on purpose: the others keep running.", {"running", "paused"}),
)


class InspectorView(QWidget):
    def __init__(self, state: ExplorerState) -> None:
        super().__init__()
        self.state = state
        self.vm = QComboBox()
        for name in state.vm_names:
            self.vm.addItem(name)
        self.vm.currentTextChanged.connect(lambda name: state.select_vm(name or None, self.vcpu.value()))
        self.vcpu = QSpinBox()
        self.vcpu.setPrefix("vcpu")
        self.vcpu.valueChanged.connect(lambda i: state.select_vm(state.selected_vm, i))
        top = QHBoxLayout()
        top.addWidget(QLabel("<b>Inspect</b>"))
        top.addWidget(self.vm)
        top.addWidget(self.vcpu)
        self.buttons: dict[str, QPushButton] = {}
        for label, method, tip, _ in VM_BUTTONS:
            button = QPushButton(label)
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, m=method: self.act(m))
            self.buttons[method] = button
            top.addWidget(button)
        top.addStretch(1)
        self.console = ConsoleView(state)
        self.vga = VgaView(state)
        self.cpu = CpuView(state)
        self.breakpoints = BreakpointsView(state)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.console, "Serial console")
        self.tabs.addTab(self.vga, "VGA screen")
        self.tabs.addTab(self.cpu, "CPU: registers and code")
        self.tabs.addTab(self.breakpoints, "Breakpoints")
        self._shown: tuple[str, int] | None = None
        self.tabs.currentChanged.connect(lambda _: state.want_screen(self.tabs.currentWidget() is self.vga))
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.tabs)

    def act(self, method: str) -> None:
        vm = self.state.selected_vm
        if vm is None:
            return
        if method == "step":
            self.state.facade.step(vm, self.state.selected_vcpu)
        else:
            getattr(self.state.facade, method)(vm)

    def refresh(self) -> None:
        state = self.state
        if state.selected_vm and self.vm.currentText() != state.selected_vm:
            self.vm.setCurrentText(state.selected_vm)
        view = state.vm_view()
        shown = (view.state, len(view.vcpus)) if view is not None else ("created", 0)
        if shown != self._shown:
            self._shown = shown
            self.vcpu.setMaximum(max(0, shown[1] - 1))
            for label, method, _, states in VM_BUTTONS:
                self.buttons[method].setEnabled(shown[0] in states)
        current = self.tabs.currentWidget()
        for view_ in (self.console, self.vga, self.cpu, self.breakpoints):
            if view_ is current or view_ is self.console:
                view_.refresh()
