"""What the GUI can ask the machine to do: a table of commands, each with a one-line
description. The worker thread runs them between scheduler rounds (``worker.py``);
each handler returns a message for the status bar (or None), or raises a
``SandboxError`` whose one-line message the user sees."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from sandbox.errors import SandboxError
from sandbox.vm.machine import VmState
from sandbox.vm.vcpu import VCpuState

from gui.control import ControlError, pause_vm, restart_vm, resume_vm
from gui.speeds import SPEEDS

if TYPE_CHECKING:
    from gui.worker import Worker

HALT_WAIT_NS = 2_000_000_000        # Step on a halted vCPU waits at most this long for its interrupt
STEP_WATCHDOG_S = 1.0               # a single step that runs longer than this is stopped


def _vm(w: "Worker", name: str):
    if name not in w.machine.vms:
        raise ControlError(f"no VM named '{name}'")
    return w.machine.vms[name]


def power_on(w: "Worker", vm: str | None = None) -> str:
    names = [vm] if vm else [n for n, v in w.machine.vms.items() if v.state == VmState.CREATED]
    for name in names:
        if _vm(w, name).state != VmState.CREATED:
            raise ControlError(f"VM {name} is already {_vm(w, name).state.value}: use Reset to reboot it")
        w.machine.power_on(name)
    w.rearm_breakpoints()
    return f"powered on {', '.join(names)}" if names else "every VM is already powered on"


def pause(w: "Worker", vm: str) -> str:
    pause_vm(_vm(w, vm))
    return f"{vm} paused: its vCPUs are not scheduled, the others go on"


def resume(w: "Worker", vm: str) -> str:
    resume_vm(_vm(w, vm))
    return f"{vm} resumed"


def power_off(w: "Worker", vm: str) -> str:
    target = _vm(w, vm)
    if target.state not in (VmState.RUNNING, VmState.PAUSED):
        raise ControlError(f"VM {vm} is {target.state.value}: nothing to power off")
    target.stop(VmState.POWERED_OFF, "powered off from the explorer", 0)
    return f"{vm} powered off"


def reset(w: "Worker", vm: str) -> str:
    restart_vm(_vm(w, vm))
    w.rearm_breakpoints()
    return f"{vm} reset: its CPU restarts at the firmware"


def crash(w: "Worker", vm: str) -> str:
    target = _vm(w, vm)
    if target.state not in (VmState.RUNNING, VmState.PAUSED):
        raise ControlError(f"VM {vm} is {target.state.value}: nothing to crash")
    target.crash("crashed on purpose from the explorer")
    return f"{vm} crashed on purpose; the other VMs go on"


def feed(w: "Worker", vm: str, text: str) -> None:
    target = _vm(w, vm)
    if target.state not in (VmState.RUNNING, VmState.PAUSED):
        raise ControlError(f"VM {vm} is {target.state.value}: it cannot take input")
    w.machine.feed(vm, text)


def step(w: "Worker", vm: str, vcpu: int = 0, count: int = 1) -> str:
    """Pause the machine and execute ``count`` instructions on one vCPU."""
    target = _vm(w, vm)
    if target.state not in (VmState.RUNNING, VmState.PAUSED):
        raise ControlError(f"VM {vm} is {target.state.value}: nothing to step")
    if not 0 <= vcpu < len(target.vcpus):
        raise ControlError(f"VM {vm} has no vcpu{vcpu}")
    w.set_speed("step")
    m, cpu = w.machine, target.vcpus[vcpu]
    was_paused = target.state == VmState.PAUSED
    target.state = VmState.RUNNING
    waited = 0
    try:
        for _ in range(count):
            if cpu.state == VCpuState.HALTED:        # time passes until its next interrupt
                start = m.now_ns
                m.run(until_ns=start + HALT_WAIT_NS, should_stop=lambda: cpu.state != VCpuState.HALTED)
                waited += m.now_ns - start
                if cpu.state == VCpuState.HALTED:
                    raise ControlError(f"{vm}/vcpu{vcpu} is halted and no interrupt came within 2 s")
            if not target.active:
                break
            w.breaks.step_over(vm, vcpu, cpu.backend.linear_pc())
            _guarded_step(w, vm, vcpu, cpu)
    finally:
        if was_paused and target.state == VmState.RUNNING:
            target.state = VmState.PAUSED
    note = f" (waited {waited / 1e6:.2f} ms of guest time for an interrupt)" if waited else ""
    return f"{vm}/vcpu{vcpu}: executed {count} instruction{'s' if count > 1 else ''}{note}"


def _guarded_step(w: "Worker", vm: str, index: int, cpu) -> None:
    """``Machine.step``, with a watchdog: an engine that does not stop after one
    instruction is stopped from a timer thread (``request_stop`` is thread-safe), so
    the explorer never hangs on a step."""
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        cpu.backend.request_stop()
    timer = threading.Timer(STEP_WATCHDOG_S, stop)
    timer.start()
    try:
        w.machine.step(vm, index)
    finally:
        timer.cancel()
    if fired.is_set():
        raise ControlError(f"{vm}/vcpu{index}: the engine did not stop after one instruction; "
                           f"it was stopped after {STEP_WATCHDOG_S:g} s (a backend problem)")


def speed(w: "Worker", name: str) -> str:
    if name not in SPEEDS:
        raise ControlError(f"unknown speed '{name}' (choose: {', '.join(SPEEDS)})")
    w.set_speed(name)
    return f"{SPEEDS[name].label}: {SPEEDS[name].description}"


def run_until(w: "Worker", ns: int) -> None:
    """Full speed until guest time ``ns``, then the machine pauses (speed "step")."""
    w.set_speed("full")
    w.target_ns = ns


def inspect(w: "Worker", vm: str | None, vcpu: int = 0, screen: bool = True) -> None:
    w.inspect = (vm, vcpu, screen) if vm else None


def breakpoints(w: "Worker", items: list) -> str | None:
    problems = w.breaks.set(items)
    return "; ".join(problems) if problems else None


def trace_frequent(w: "Worker", on: bool) -> str:
    w.trace_frequent = on
    w.retrace()
    return "recording every event kind (slower)" if on else "recording only the rarer event kinds"


def lesson_step(w: "Worker", player, choice: int | None = None):
    """Play the lesson's current step on the machine (the player drives it here, in the
    machine's thread); the explorer stays paused in between so the lesson sets the pace."""
    w.set_speed("step")
    result = player.play_step(choice)
    w.rearm_breakpoints()         # a step may have powered a VM on
    return result


def barrier(w: "Worker") -> None:
    """Does nothing: waiting for it waits for every command queued before it."""


@dataclass(frozen=True)
class Command:
    run: Callable[..., Any]
    description: str


COMMANDS: dict[str, Command] = {
    "power_on": Command(power_on, "Run the power-on workflow of a VM (every VM not on yet when none is named)."),
    "pause": Command(pause, "Stop scheduling one VM's vCPUs; the other VMs go on."),
    "resume": Command(resume, "Schedule a paused VM's vCPUs again."),
    "power_off": Command(power_off, "Pull the plug of one VM: it stops at once, its disk is flushed."),
    "reset": Command(reset, "Press the reset button: the VM's CPU restarts at the firmware."),
    "crash": Command(crash, "Crash one VM on purpose, to show that the others are isolated from it."),
    "feed": Command(feed, "Type text into a VM's serial console."),
    "step": Command(step, "Pause the machine and execute exactly one instruction on one vCPU."),
    "speed": Command(speed, "Choose single step (paused), slow motion or full speed."),
    "run_until": Command(run_until, "Run at full speed until a guest time, then pause."),
    "inspect": Command(inspect, "Choose the vCPU whose registers, code (and screen) the inspector shows."),
    "breakpoints": Command(breakpoints, "Replace the set of breakpoints."),
    "trace_frequent": Command(trace_frequent, "Record the frequent event kinds too (the machine gets slower)."),
    "lesson_step": Command(lesson_step, "Play the open lesson's current step (actions, then wait for its event)."),
    "barrier": Command(barrier, "Nothing; used to wait for the commands before it."),
}

__all__ = ["COMMANDS", "Command", "SandboxError"]
