"""The explorer's machinery without Qt: the facade, its worker thread, breakpoints,
the default scenario and the tables the views are drawn from."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from asm import disk_image, needs_as
from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig

from gui.breakpoints import Breakpoint, BreakpointError
from gui.disasm import around
from gui.facade import MachineFacade
from gui.scenario import GuestSpec, ScenarioError, default_scenario
from gui.state import WORKFLOW_STEPS

pytestmark = [needs_as, pytest.mark.timeout(60)]

# Prints "ready", then echoes every byte it receives on COM1 (polling: never halts).
ECHO = r"""
    cli
    xor %ax, %ax
    mov %ax, %ds
    mov $0x3f8, %dx
    mov $banner, %si
print:
    lodsb
    test %al, %al
    jz echo
    out %al, %dx
    jmp print
echo:
    mov $0x3fd, %dx
wait:
    in %dx, %al
    test $1, %al
    jz wait
    mov $0x3f8, %dx
    in %dx, %al
    out %al, %dx
    jmp echo
banner: .asciz "ready\n"
"""
# Four instructions in a loop: 0x7c00 xor, 0x7c02 inc ax, 0x7c03 inc bx, 0x7c04 nop, 0x7c05 jmp 0x7c02.
LOOP = """
    xor %ax, %ax
1:  inc %ax
    inc %bx
    nop
    jmp 1b
"""


def machine(tmp_path: Path, **guests: str) -> Machine:
    vms = [VmConfig(name=name, disk=disk_image(tmp_path / f"{name}.img", source)) for name, source in guests.items()]
    return Machine(MachineConfig(HostConfig(cpus=2), vms))


@pytest.fixture
def facade(tmp_path):
    f = MachineFacade(machine(tmp_path, echo=ECHO, loop=LOOP))
    yield f
    f.close()


def console_until(f: MachineFacade, vm: str, text: str, timeout: float = 10.0) -> str:
    out = []
    f.wait_for(lambda s: out.append(f.drain_console().get(vm, b"").decode()) or text in "".join(out), timeout)
    return "".join(out)


def test_power_on_publishes_the_workflow_in_order(facade):
    facade.power_on("echo").wait()
    kinds = [e.kind for e in facade.drain_events() if e.vm == "echo" and e.kind.startswith("power.")]
    expected = [k for k, _ in WORKFLOW_STEPS if k != "power.network_attached"]   # no NIC here
    assert kinds == expected


def test_console_shows_output_and_takes_input(facade):
    facade.power_on().wait()
    assert "ready" in console_until(facade, "echo", "ready")
    facade.feed("echo", "hi there\n").wait()
    assert "hi there" in console_until(facade, "echo", "hi there")


def test_step_executes_exactly_one_instruction(facade):
    facade.set_speed("step").wait()
    facade.power_on("loop").wait()
    facade.inspect("loop").wait()
    path = []
    for _ in range(6):
        path.append(facade.settle().detail.regs["eip"])
        facade.step("loop").wait()
    assert path == [0x7C00, 0x7C02, 0x7C03, 0x7C04, 0x7C05, 0x7C02]
    regs = facade.settle().detail.regs
    assert (regs["eax"] & 0xFFFF, regs["ebx"] & 0xFFFF) == (2, 1)   # two inc ax, one inc bx so far


def test_crashing_one_vm_leaves_the_others_running(facade):
    facade.power_on().wait()
    facade.crash("loop").wait()
    before = facade.settle()
    assert before.vm("loop").state == "crashed"
    executed = lambda s: s.vm("echo").vcpus[0].instructions   # noqa: E731
    after = facade.wait_for(lambda s: executed(s) > executed(before) + 100_000)
    assert after.vm("echo").state == "running"
    facade.feed("echo", "still here\n")
    assert "still here" in console_until(facade, "echo", "still here")


def test_pause_resume_and_power_off_one_vm(facade):
    facade.power_on().wait()
    facade.pause_vm("loop").wait()
    paused = facade.settle()
    assert paused.vm("loop").state == "paused"
    later = facade.wait_for(lambda s: s.now_ns > paused.now_ns + 5_000_000)
    assert later.vm("loop").vcpus[0].instructions == paused.vm("loop").vcpus[0].instructions
    facade.resume_vm("loop").wait()
    facade.wait_for(lambda s: s.vm("loop").vcpus[0].instructions > paused.vm("loop").vcpus[0].instructions)
    facade.power_off("loop").wait()
    assert facade.settle().vm("loop").state == "powered_off"
    assert facade.power_off("loop").wait() is None and "nothing to power off" in " ".join(facade.drain_messages())


def test_address_breakpoint_stops_before_the_instruction(facade):
    facade.add_breakpoint(Breakpoint.parse("address", "0x7c05", "loop"))
    facade.inspect("loop")
    facade.power_on("loop").wait()
    snap = facade.wait_for(lambda s: s.speed == "step" and s.stopped_at is not None)
    assert snap.detail.regs["eip"] == 0x7C05 and "0x7c05" in snap.stopped_at
    facade.set_speed("full").wait()         # resuming steps over the breakpoint, then hits it again
    again = facade.wait_for(lambda s: s.speed == "step" and s.stopped_at is not None and s.seq > snap.seq)
    assert again.detail.regs["eip"] == 0x7C05
    assert again.detail.instructions > snap.detail.instructions


def test_port_and_event_breakpoints_pause_the_machine(facade):
    facade.add_breakpoint(Breakpoint.parse("port", "0x3fd", "echo"))
    facade.power_on().wait()
    snap = facade.wait_for(lambda s: s.stopped_at is not None)
    assert snap.speed == "step" and "port 0x3fd" in snap.stopped_at
    facade.remove_breakpoint(facade.breakpoints[0])
    facade.add_breakpoint(Breakpoint.parse("event", "serial.rx"))
    facade.set_speed("full").wait()
    facade.feed("echo", "x")
    snap = facade.wait_for(lambda s: s.stopped_at is not None and "serial.rx" in s.stopped_at)
    assert snap.speed == "step"


@pytest.mark.parametrize("kind, text, problem", [
    ("address", "main", "not a number"), ("port", "0x10000", "out of range"),
    ("event", "no.such", "unknown event kind"), ("watch", "1", "unknown breakpoint kind")])
def test_bad_breakpoints_are_one_line_errors(kind, text, problem):
    with pytest.raises(BreakpointError, match=problem):
        Breakpoint.parse(kind, text)


def test_commands_a_vm_cannot_take_are_reported_not_raised(facade):
    facade.step("loop").wait()
    facade.resume_vm("echo").wait()
    messages = " ".join(facade.drain_messages())
    assert "loop is created: nothing to step" in messages and "not paused" in messages


def test_default_scenario_tolerates_missing_images(tmp_path):
    (tmp_path / "hello.img").write_bytes(b"\0" * 510 + b"\x55\xaa")
    guests = (GuestSpec("a", "hello.img", "", ""), GuestSpec("b", "missing.img", "", ""))
    scenario = default_scenario(images=tmp_path, guests=guests)
    try:
        assert [vm.name for vm in scenario.config.vms] == ["a"]
        assert "missing.img not found" in scenario.notes[0] and "sandbox guests build" in scenario.notes[0]
    finally:
        scenario.close()
    with pytest.raises(ScenarioError, match="no shipped guest image"):
        default_scenario(images=tmp_path / "nowhere", guests=guests)


def test_disassembly_lines_up_on_the_instruction_pointer():
    code = bytes.fromhex("31c0" "40" "43" "90" "ebfb")
    lines = around(code, 0x7C00, 0x7C04, bits=16)
    assert [(line.address, line.is_pc) for line in lines] == [
        (0x7C00, False), (0x7C02, False), (0x7C03, False), (0x7C04, True), (0x7C05, False)]
    assert lines[-1].text == "jmp 0x7c02"


def test_the_machinery_behind_the_window_does_not_need_qt():
    import subprocess
    import sys
    modules = "gui.facade, gui.worker, gui.snapshot, gui.metrics, gui.places, gui.layouts, gui.state, gui.bench"
    code = f"import sys, {modules}; print('PySide6' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_step_after_running_executes_exactly_one_instruction(facade):
    facade.power_on("loop").wait()
    facade.inspect("loop")
    facade.wait_for(lambda s: bool(s.vm("loop").vcpus) and s.vm("loop").vcpus[0].instructions > 1000)
    facade.set_speed("step").wait()
    loop = [0x7C02, 0x7C03, 0x7C04, 0x7C05]
    eip = facade.settle().detail.regs["eip"]
    for _ in range(5):
        assert facade.step("loop").wait() is not None, facade.drain_messages()
        new = facade.settle().detail.regs["eip"]
        assert new == loop[(loop.index(eip) + 1) % 4]
        eip = new


def test_a_step_that_does_not_stop_is_stopped_by_the_watchdog(facade, monkeypatch):
    import gui.commands
    monkeypatch.setattr(gui.commands, "STEP_WATCHDOG_S", 0.2)
    facade.set_speed("step").wait()
    facade.power_on("loop").wait()
    stuck = []

    def step_forever(vm, vcpu=0):                # an engine that never stops by itself
        backend = facade._machine.vms[vm].vcpus[vcpu].backend
        stuck.append(backend)
        while not getattr(backend, "_stop_requested", False):
            time.sleep(0.01)
    monkeypatch.setattr(facade._machine, "step", step_forever)
    assert facade.step("loop").wait(5) is None
    assert "did not stop after one instruction" in " ".join(facade.drain_messages())
