"""The explorer's model: what every view reads, updated once per refresh frame.

``ExplorerState.update()`` drains the facade (events, console output, messages, the
newest snapshot) and keeps what the views need: the event history, the power-on
workflow of each VM, console text, plot history, the selected VM and the event the
user clicked. Views read it in their ``refresh()``; commands go through ``facade``.
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

from sandbox.events import Event

from gui.metrics import History
from gui.places import highlight_places, places
from gui.snapshot import Snapshot

if TYPE_CHECKING:
    from gui.facade import MachineFacade

# The seed's power-on workflow, in order: (event kind, short title).
WORKFLOW_STEPS: tuple[tuple[str, str], ...] = (
    ("power.allocate_vcpus", "Allocate vCPUs"),
    ("power.allocate_ram", "Allocate RAM"),
    ("power.open_disk", "Open the virtual disk"),
    ("power.firmware_boot_read", "Firmware reads the boot sector"),
    ("power.guest_start", "Start the guest"),
    ("power.network_attached", "Attach the network"),
    ("power.running", "Running"),
)
WORKFLOW_KINDS = frozenset(kind for kind, _ in WORKFLOW_STEPS)
EVENT_HISTORY = 20_000
CONSOLE_LIMIT = 200_000         # characters of console text kept per VM


class ExplorerState:
    def __init__(self, facade: "MachineFacade", layout: str = "beginner") -> None:
        self.facade = facade
        self.vm_names: tuple[str, ...] = facade.vm_names
        self.layout = layout
        self.snapshot: Snapshot | None = None
        self.events: deque[Event] = deque(maxlen=EVENT_HISTORY)
        self.new_events: list[Event] = []
        self.workflow: dict[str, dict[str, Event]] = {name: {} for name in self.vm_names}
        self.consoles: dict[str, str] = {name: "" for name in self.vm_names}
        self.console_new: dict[str, str] = {}
        self.messages: deque[str] = deque(maxlen=50)
        self.new_messages: list[str] = []
        self.history = History()
        self.history_changed = False
        self.selected_vm: str | None = self.vm_names[0] if self.vm_names else None
        self.selected_vcpu = 0
        self.screen_wanted = False      # copy the selected VM's VGA screen (costs the machine)
        self.selected_event: Event | None = None
        self.selected_places: tuple[str, ...] = ()
        self.frame = 0
        self.fps = 0.0
        self._frame_times: deque[float] = deque(maxlen=60)
        self.layout_changed = True
        self.selection_changed = True
        self.changed = True
        self._dirty = False             # a user choice since the last frame
        if self.selected_vm:
            facade.inspect(self.selected_vm, 0, self.screen_wanted)

    # --- called by the refresh timer ----------------------------------------------------------
    def update(self) -> None:
        self.frame += 1
        now = time.monotonic()
        self._frame_times.append(now)
        if len(self._frame_times) > 1:
            span = self._frame_times[-1] - self._frame_times[0]
            self.fps = (len(self._frame_times) - 1) / span if span > 0 else 0.0
        self.new_events = self.facade.drain_events()
        for ev in self.new_events:
            if ev.kind in WORKFLOW_KINDS and ev.vm in self.workflow:
                self.workflow[ev.vm].setdefault(ev.kind, ev)
            elif ev.kind == "vm.reset" and ev.vm in self.workflow:
                self.workflow[ev.vm] = {k: e for k, e in self.workflow[ev.vm].items()
                                        if k != "power.firmware_boot_read"}
        self.events.extend(self.new_events)
        self.console_new = {}
        for name, data in self.facade.drain_console().items():
            text = data.decode("latin-1").replace("\r\n", "\n").replace("\r", "")
            self.console_new[name] = text
            self.consoles[name] = (self.consoles.get(name, "") + text)[-CONSOLE_LIMIT:]
        self.new_messages = self.facade.drain_messages()
        self.messages.extend(self.new_messages)
        snap = self.facade.snapshot()
        fresh = snap is not None and snap is not self.snapshot
        if fresh:
            self.snapshot = snap
            self.history_changed = self.history.offer(snap)
        else:
            self.history_changed = False
        # Anything for the views to redraw? (If not, the frame ends here: cheap.)
        self.changed = bool(fresh or self.new_events or self.console_new or self.new_messages
                            or self.layout_changed or self.selection_changed or self._dirty)
        self._dirty = False

    def end_frame(self) -> None:
        """Called after every view refreshed: one-frame flags go back down."""
        self.layout_changed = False
        self.selection_changed = False

    # --- user choices --------------------------------------------------------------------------
    def select_vm(self, name: str | None, vcpu: int = 0) -> None:
        if (name, vcpu) == (self.selected_vm, self.selected_vcpu):
            return
        self.selected_vm, self.selected_vcpu = name, vcpu
        self.selection_changed = True
        self._dirty = True
        self.facade.inspect(name, vcpu, self.screen_wanted)

    def want_screen(self, on: bool) -> None:
        if on != self.screen_wanted:
            self.screen_wanted = on
            self.facade.inspect(self.selected_vm, self.selected_vcpu, on)

    def set_layout(self, name: str) -> None:
        if name != self.layout:
            self.layout = name
            self.layout_changed = True

    def select_event(self, ev: Event | None) -> None:
        self._dirty = True
        self.selected_event = ev
        self.selected_places = places(ev) if ev is not None else ()

    def highlight(self, names: list[str]) -> None:
        """Outline what a lesson step talks about ("layer:vm", "device:hello/com1", ...)."""
        self._dirty = True
        self.selected_event = None
        self.selected_places = highlight_places(names)

    def vm_view(self, name: str | None = None) -> Any:
        snap = self.snapshot
        name = name or self.selected_vm
        return snap.vm(name) if snap is not None and name else None

    def detail(self):
        snap = self.snapshot
        d = snap.detail if snap is not None else None
        return d if d is not None and d.vm == self.selected_vm and d.vcpu == self.selected_vcpu else None
