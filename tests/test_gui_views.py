"""Each view on its own, fed by a fake facade and hand-made snapshots: what it shows."""
from __future__ import annotations

import time
from collections import deque
from types import SimpleNamespace

import pytest

pytest.importorskip("pytestqt")

from sandbox.devices.registry import PC_DEVICES   # noqa: E402
from sandbox.events import EVENT_KINDS, Event   # noqa: E402

from gui import places   # noqa: E402
from gui.layouts import HARDWARE, HYPERVISOR, VM_ROWS   # noqa: E402
from gui.metrics import History   # noqa: E402
from gui.snapshot import Detail, PcpuView, RamView, Snapshot, VCpuView, VmView, entitlements   # noqa: E402
from gui.state import WORKFLOW_STEPS, ExplorerState   # noqa: E402
from gui.views.architecture import ArchitectureView   # noqa: E402
from gui.views.cpu import CpuView   # noqa: E402
from gui.views.eventlog import EventLogView   # noqa: E402
from gui.views.plots import PlotsView   # noqa: E402
from gui.views.vga import VgaView   # noqa: E402
from gui.views.workflow import WorkflowPanel   # noqa: E402

NAMES = ("alpha", "beta")


class FakeFacade:
    """Stands for gui.facade.MachineFacade: queues what the 'machine' produced, records commands."""

    def __init__(self) -> None:
        self.vm_names = NAMES
        self.devices = PC_DEVICES
        self.host_cpus = 2
        self.breakpoints = []
        self.config = SimpleNamespace(source="<test>")
        self.events: deque[Event] = deque()
        self.snap: Snapshot | None = None
        self.calls: list[tuple] = []
        self.seq = 0

    def publish(self, kind: str, vm: str | None = "alpha", t: int = 0, **data) -> Event:
        self.seq += 1
        ev = Event(kind, t, vm, data, self.seq)
        self.events.append(ev)
        return ev

    def drain_events(self, limit: int = 20_000):
        out = list(self.events)
        self.events.clear()
        return out

    def drain_console(self):
        return {}

    def drain_messages(self):
        return []

    def snapshot(self):
        return self.snap

    def __getattr__(self, name):        # inspect, feed, step, power_on, trace_frequent, ...
        return lambda *a, **k: self.calls.append((name, a, k))


def vm_view(name: str, run_ns: int = 0, state: str = "running", resident: int = 0, entitled: float = 1.0) -> VmView:
    return VmView(name, state, None, 16, (VCpuView(0, "runnable", run_ns, 0, run_ns // 10, 0, {}),),
                  {"exit.io": run_ns // 1000}, {"resident": resident, "shared": 0, "swapped": 0, "ballooned": 0},
                  f"/images/{name}.img", "raw", None, None, run_ns, entitled, run_ns // 4, run_ns,
                  f"{name} says hi", 10)


def snapshot(seq: int, now_ns: int, vms: tuple[VmView, ...], detail: Detail | None = None,
             owners: bytes = bytes([1, 1, 2, 0, 0, 0])) -> Snapshot:
    return Snapshot(seq, seq * 1.0, now_ns, "full", "unicorn", True, 1_000_000, vms,
                    (PcpuView(0, now_ns // 2, "alpha/vcpu0"), PcpuView(1, 0, None)), ("beta/vcpu0",),
                    RamView(len(owners), owners.count(0), owners, NAMES),
                    {"cow_faults": 0, "frames_free": owners.count(0), "frames_total": len(owners)},
                    detail, extra={"disks": ("disk0 (ssd)",), "nics": ("eth0",)})


@pytest.fixture
def model(qtbot):
    facade = FakeFacade()
    facade.snap = snapshot(1, 1_000_000, (vm_view("alpha"), vm_view("beta")))
    state = ExplorerState(facade)
    state.update()
    return state


def frame(state: ExplorerState, *views) -> None:
    state.update()
    for view in views:
        view.refresh()
    state.end_frame()


def test_layouts_are_tables_with_unique_keys_and_two_levels():
    keys = [e.key for e in VM_ROWS + HYPERVISOR + HARDWARE]
    assert len(keys) == len(set(keys))
    beginner = {e.key for e in VM_ROWS + HYPERVISOR + HARDWARE if "beginner" in e.layouts}
    advanced = {e.key for e in VM_ROWS + HYPERVISOR + HARDWARE if "advanced" in e.layouts}
    assert beginner < advanced


def test_every_event_kind_has_a_place_on_the_diagram():
    for kind in EVENT_KINDS:
        ev = Event(kind, 0, "alpha", {"pcpu": 1, "port": 0x3F8, "vcpu": 0}, 1)
        assert places.places(ev), kind
        flow = places.flow(ev)
        assert flow is None or len(flow) == 3
    assert places.resolve("vm.alpha.nic", {"vm.alpha": 1}) == "vm.alpha"
    assert places.resolve("hv.firmware", {"hv.devices": 1}) == "hv.devices"


def test_architecture_view_shows_who_runs_where_and_flashes_events(model):
    view = ArchitectureView(model)
    frame(model, view)
    assert view.blocks["hw.pcpu.0"].lines[0] == "runs alpha/vcpu0"
    assert view.blocks["hw.pcpu.1"].lines[0] == "idle"
    assert view.blocks["vm.alpha"].badge == ("running", "#16a34a")
    assert [label for label, _ in view.blocks["hv.scheduler"].chips] == ["beta/vcpu0"]
    model.facade.publish("mem.alloc", gfn=1, hfn=2)
    model.facade.publish("power.firmware_boot_read", vm="beta")      # not the inspected VM: no arrow
    frame(model, view)
    assert view.blocks["hw.ram"].flash > 0 and view.blocks["vm.alpha.ram"].flash > 0
    assert list(view.arrows) == [("hw.ram", "vm.alpha.ram")]
    view._animate(time.monotonic() + 5)
    assert not view.arrows and view.blocks["hw.ram"].flash == 0


def test_architecture_view_rebuilds_for_the_advanced_layout(model):
    view = ArchitectureView(model)
    assert "vm.alpha.nic" not in view.blocks
    model.set_layout("advanced")
    frame(model, view)
    assert {"vm.alpha.nic", "vm.beta.exits", "hv.firmware", "hv.switch"} <= set(view.blocks)


def test_clicked_event_is_outlined_where_it_happened(model):
    view = ArchitectureView(model)
    model.select_event(Event("power.open_disk", 0, "beta", {}, 1))
    frame(model, view)
    assert {k for k, b in view.blocks.items() if b.selected} == {"vm.beta.disk", "hw.disks"}


def test_a_lesson_step_can_outline_parts_of_the_diagram(model):
    view = ArchitectureView(model)
    model.highlight(["layer:hypervisor", "vcpu:alpha/0", "host:cpu1", "hypervisor:memory_manager", "bogus:x"])
    frame(model, view)
    assert {k for k, b in view.blocks.items() if b.selected} == {
        "band.hypervisor", "vm.alpha.vcpus", "hw.pcpu.1", "hv.memory"}


def test_workflow_panel_lights_steps_as_their_events_arrive(model):
    panel = WorkflowPanel(model)
    for kind, _ in WORKFLOW_STEPS[:3]:
        model.facade.publish(kind, t=5_000)
    frame(model, panel)
    assert panel.lit_steps() == [k for k, _ in WORKFLOW_STEPS[:3]]
    assert panel.table.item(2, 1).text() == "0.005 ms"
    assert panel.table.item(3, 1).text() == ""
    model.select_vm("beta")
    frame(model, panel)
    assert panel.lit_steps() == [] and "beta" in panel.title.text()
    assert ("inspect", ("beta", 0, False), {}) in model.facade.calls


def test_event_log_filters_by_vm_layer_and_kind(model):
    log = EventLogView(model)
    model.facade.publish("mem.alloc", gfn=1, hfn=2)
    model.facade.publish("power.open_disk", vm="beta", path="x")
    model.facade.publish("sched.switch", vm="beta", pcpu=0, vcpu=0)
    frame(model, log)
    assert log.model.rowCount() == 3
    log.vm.setCurrentText("beta")
    assert [e.kind for e in log.model.rows] == ["power.open_disk", "sched.switch"]
    log.layer.setCurrentText("hypervisor")
    log.kind.setCurrentText("sched.switch")
    assert [e.kind for e in log.model.rows] == ["sched.switch"]
    log.select_row(0)
    assert model.selected_places == ("hw.pcpu.0", "hv.scheduler") and model.selected_vm == "beta"


def detail(eip: int, eax: int = 0) -> Detail:
    code = bytes.fromhex("31c0" "40" "43" "90" "ebfb")
    screen = tuple(tuple((c, 0x1E) for c in (("Hello VGA" if r == 0 else "").ljust(80))) for r in range(25))
    return Detail("alpha", 0, {"eax": eax, "eip": eip, "cr0": 0, "eflags": 0x202}, "real", eip, code, 0x7C00,
                  42, screen, (0, 9), ())


def test_cpu_view_shows_registers_and_code_around_the_pc(model):
    view = CpuView(model)
    model.facade.snap = snapshot(2, 2_000_000, model.snapshot.vms, detail(0x7C03, eax=1))
    frame(model, view)
    assert [line.address for line in view.lines if line.is_pc] == [0x7C03]
    assert "real mode" in view.summary.text()
    model.facade.snap = snapshot(3, 2_000_010, model.snapshot.vms, detail(0x7C04, eax=2))
    frame(model, view)
    assert "#dc2626'>00000002" in view.regs.text()          # eax changed: shown in red
    assert "IF" in view.regs.text()


def test_vga_view_shows_the_text_screen(model, qtbot):
    view = VgaView(model)
    qtbot.addWidget(view)
    model.facade.snap = snapshot(2, 2_000_000, model.snapshot.vms, detail(0x7C00))
    frame(model, view)
    assert view.text()[0].startswith("Hello VGA") and len(view.text()) == 25
    assert view.grab().width() > 0


def test_history_and_plots_follow_received_and_entitled_cpu(model, qtbot):
    plots = PlotsView(model)
    qtbot.addWidget(plots)
    history = model.history
    history.period_s = 0.2
    for i in range(1, 6):
        vms = (vm_view("alpha", run_ns=i * 500_000, resident=10 * i, entitled=1.5), vm_view("beta", entitled=0.5))
        history.offer(snapshot(i, i * 1_000_000, vms))
    assert list(history.values["cpu"][("alpha", "received")])[-1] == pytest.approx(0.5)
    assert list(history.values["cpu"][("beta", "entitled")])[-1] == 0.5
    assert list(history.values["ready"][("alpha", "ready")])[-1] == pytest.approx(25.0)
    plots.refresh(force=True)
    assert ("alpha", "received") in plots.curves["cpu"] and ("alpha", "resident") in plots.curves["memory"]
    assert ("alpha", "swapped") not in plots.curves["memory"]      # always zero: no curve


def test_entitlement_is_a_fair_share_capped_at_one_cpu_per_vcpu():
    def vm(name, vcpus, state="running"):
        return SimpleNamespace(name=name, state=SimpleNamespace(value=state), vcpus=[0] * vcpus,
                               config=SimpleNamespace())
    def host(cpus, **vms):
        return SimpleNamespace(vms=vms, hypervisor=SimpleNamespace(host=SimpleNamespace(cpus=[0] * cpus)))
    # Shares are per vCPU (1000 each): 1 : 4 of two CPUs; a paused VM is entitled to nothing.
    assert entitlements(host(2, a=vm("a", 1), b=vm("b", 4), c=vm("c", 1, "paused"))) == {"a": 0.4, "b": 1.6}
    # Four CPUs for 1 + 2 vCPUs: the fair share (4/3, 8/3) is more than they can use.
    assert entitlements(host(4, a=vm("a", 1), b=vm("b", 2))) == {"a": 1.0, "b": 2.0}
    assert History().offer(snapshot(1, 0, ())) is False             # the first snapshot only primes
