"""What a lesson step can do to the machine: a table of actions.

Each action gets the step's session (the machine, ``run_for`` that stops as soon as
the step's condition holds, and ``note`` for a line of output) and the parameters
written in the lesson file. ``params`` maps each parameter to (type, required).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from lessons.engine.disasm import current_instruction
from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from lessons.engine.player import StepSession

NS_PER_MS = 1_000_000
TRACE_LINES = 12            # single-stepped instructions listed per step


@dataclass(frozen=True)
class ActionSpec:
    name: str
    run: Callable[["StepSession", dict[str, Any]], None]
    description: str
    params: dict[str, tuple[Any, bool]]


def _vm(session: "StepSession", params: dict[str, Any]):
    name = params.get("vm")
    if name is not None and name not in session.machine.vms:
        raise SandboxError(f"the lesson names VM '{name}', which its machine does not have")
    return session.machine.vm(name)


def power_on(session: "StepSession", params: dict[str, Any]) -> None:
    name = params.get("vm")
    _vm(session, params)
    session.machine.power_on(name)
    session.note(f"powered on {name or ', '.join(session.machine.vms)}")


def run(session: "StepSession", params: dict[str, Any]) -> None:
    outcome = session.run_for(int(float(params.get("ms", session.step.limit_ms)) * NS_PER_MS))
    session.note(f"ran until guest time {session.machine.now_ns / NS_PER_MS:.3f} ms ({outcome})")


def step(session: "StepSession", params: dict[str, Any]) -> None:
    """Single-step; with an ``until`` on the step, stop right after the instruction
    that made the condition true. The last ``trace`` instructions are listed."""
    vm = _vm(session, params)
    vcpu = vm.vcpus[0]
    keep = int(params.get("trace", TRACE_LINES))
    trace: list[str] = []
    done = 0
    for _ in range(int(params["count"])):
        if not vm.active:
            session.note(f"{vm.name} is {vm.state.value}: nothing to step")
            break
        text = current_instruction(vcpu)
        exit = session.machine.step(vm.name)
        done += 1
        after = "" if exit.kind == "step" else f"   -> {exit.kind}"
        trace = (trace + [f"{vm.name}/vcpu0  {text}{after}"])[-keep:]
        if session.step.until is not None and session.find() is not None:
            break
    if done > len(trace):
        session.note(f"single-stepped {done} instructions; the last {len(trace)}:")
    for line in trace:
        session.note(line)


def feed(session: "StepSession", params: dict[str, Any]) -> None:
    vm = _vm(session, params)
    session.machine.feed(vm.name, params["text"])
    session.note(f"typed {params['text']!r} into {vm.name}'s serial port")


def crash(session: "StepSession", params: dict[str, Any]) -> None:
    vm = _vm(session, params)
    vm.crash(params.get("reason", "stopped by the lesson, as the hypervisor stops a crashed VM"))
    session.note(f"{vm.name} is now {vm.state.value}")


def set_cpu(session: "StepSession", params: dict[str, Any]) -> None:
    """Change a running VM's shares or limit, as an administrator does in vSphere."""
    from sandbox.hypervisor.policies.base import SHARES_PER_VCPU   # noqa: PLC0415
    vm = _vm(session, params)
    sched = session.machine.hypervisor.scheduler
    changes: dict[str, Any] = {}
    if "shares" in params:
        shares = params["shares"]
        if isinstance(shares, str):
            if shares not in SHARES_PER_VCPU:
                raise SandboxError(f"shares '{shares}': use low, normal, high or a number")
            shares = SHARES_PER_VCPU[shares] * len(vm.vcpus)
        changes["shares"] = int(shares)
    if "limit" in params:
        changes["limit"] = None if params["limit"] == "none" else float(params["limit"])
    new = sched.set_params(vm.name, **changes)
    limit = "none" if new.limit is None else f"{new.limit:g}% of a CPU"
    session.note(f"{vm.name}: shares {new.shares}, limit {limit}")


def balloon(session: "StepSession", params: dict[str, Any]) -> None:
    """Ask a VM's balloon driver to hold ``pages`` pages (the memory manager's teacher's
    lever: the target holds whatever the host's memory state)."""
    vm = _vm(session, params)
    mm = session.machine.hypervisor.memory_manager
    if vm.name not in mm.accounts:
        raise SandboxError(f"VM {vm.name} is not powered on: it has no balloon yet")
    if not vm.config.balloon:
        raise SandboxError(f"VM {vm.name} has no balloon driver (balloon = true in its config)")
    mm.balloon.force(vm.name, int(params["pages"]))
    session.note(f"asked {vm.name}'s balloon to hold {params['pages']} pages "
                 f"({int(params['pages']) * 4} KiB)")


ACTIONS: dict[str, ActionSpec] = {a.name: a for a in (
    ActionSpec("power_on", power_on, "Run the power-on workflow of one VM (vm = NAME) or of all.",
               {"vm": (str, False)}),
    ActionSpec("run", run, "Run the machine for ms of guest time, or until the step's condition holds.",
               {"ms": ((int, float), False)}),
    ActionSpec("step", step, "Execute up to count guest instructions one by one on a VM's first vCPU "
               "(stopping at the step's condition), listing the last trace of them.",
               {"count": (int, True), "vm": (str, False), "trace": (int, False)}),
    ActionSpec("feed", feed, "Type text into a VM's serial port (COM1), as a user at its console.",
               {"vm": (str, True), "text": (str, True)}),
    ActionSpec("crash", crash, "Stop a VM the way the hypervisor stops a crashed one.",
               {"vm": (str, True), "reason": (str, False)}),
    ActionSpec("set_cpu", set_cpu, "Change a running VM's CPU shares (low, normal, high or a number) "
               "or limit (percent of one CPU, or \"none\").",
               {"vm": (str, True), "shares": ((str, int), False), "limit": ((int, float, str), False)}),
    ActionSpec("balloon", balloon, "Set the number of pages a VM's balloon driver should hold.",
               {"vm": (str, True), "pages": (int, True)}),
)}
