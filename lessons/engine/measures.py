"""What a prediction is checked against: a table of measurements of the machine.

A student predicts before the step runs; after it, the player measures what really
happened and finds the choice that matches. Measurements look at the events of the
step (from where it started to the event that completed it), the VMs' consoles
during the step, or the machine's state and run report afterwards.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from lessons.engine.conditions import event_matches

if TYPE_CHECKING:
    from lessons.engine.player import StepSession


@dataclass(frozen=True)
class MeasureSpec:
    name: str
    measure: Callable[["StepSession", dict[str, Any], list[str]], Any]
    description: str
    params: dict[str, tuple[Any, bool]]


def _next_event(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    kinds = params.get("kinds", labels)
    for ev in session.step_events():
        if ev.kind in kinds and (params.get("vm") is None or ev.vm == params["vm"]):
            return ev.kind
    return None


def _formatted(value: Any, style: str) -> Any:
    if style == "hex" and isinstance(value, int):
        return hex(value)
    return str(value) if style == "str" else value


def _event_field(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    want = {"event": params["kind"], "vm": params.get("vm"), "data": params.get("data", {})}
    for ev in session.step_events():
        if event_matches(ev, want):
            return _formatted(ev.data.get(params["field"]), params.get("format", "raw"))
    return None


def _count(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    want = {"event": params["kind"], "vm": params.get("vm"), "data": params.get("data", {})}
    return sum(1 for ev in session.step_events() if event_matches(ev, want))


def _vm_state(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    return session.machine.vms[params["vm"]].state.value


def _cpu_percent(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    elapsed = session.machine.now_ns - session.start_ns
    if elapsed <= 0:
        return None
    ran = session.run_ns(params["vm"]) - session.start_run_ns.get(params["vm"], 0)
    return 100.0 * ran / elapsed


def _ready_percent(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    elapsed = session.machine.now_ns - session.start_ns
    if elapsed <= 0:
        return None
    ready = session.ready_ns(params["vm"]) - session.start_ready_ns.get(params["vm"], 0)
    return 100.0 * ready / elapsed


def _resident_mib(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    memory = session.machine.vms[params["vm"]].memory
    return memory.resident_pages() * 4096 / (1 << 20) if memory is not None else 0.0


def _frames_in_common(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    """Host frames that every listed VM's frame table maps (0: fully isolated)."""
    common: set[int] | None = None
    for name in params["vms"]:
        memory = session.machine.vms[name].memory
        frames = {h for h in memory.table if h >= 0} if memory is not None else set()
        common = frames if common is None else common & frames
    return len(common or ())


def _console_match(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    found = re.search(params["regex"], session.console_text(params["vm"]))
    if found is None:
        return None
    return found.group(1) if found.groups() else found.group(0)


def _report(session: "StepSession", params: dict[str, Any], labels: list[str]) -> Any:
    """A value of ``Machine.report()`` by dotted path; ``vms.NAME`` picks a VM by name."""
    node: Any = session.machine.report()
    for part in params["path"].split("."):
        if isinstance(node, list):
            node = next((x for x in node if isinstance(x, dict) and x.get("name") == part), None)
        elif isinstance(node, dict):
            node = node.get(part)
        if node is None:
            return None
    return node


MEASURES: dict[str, MeasureSpec] = {m.name: m for m in (
    MeasureSpec("next_event", _next_event,
                "Which of these event kinds (the choices, or kinds) arrives first during the step.",
                {"kinds": (list, False), "vm": (str, False)}),
    MeasureSpec("event_field", _event_field,
                "A field of the first event of a kind during the step (format: raw, hex or str).",
                {"kind": (str, True), "field": (str, True), "vm": (str, False), "data": (dict, False),
                 "format": (str, False)}),
    MeasureSpec("count", _count, "How many events of a kind arrive during the step.",
                {"kind": (str, True), "vm": (str, False), "data": (dict, False)}),
    MeasureSpec("vm_state", _vm_state, "The state of a VM after the step (running, crashed, ...).",
                {"vm": (str, True)}),
    MeasureSpec("cpu_percent", _cpu_percent,
                "The share of the step's guest time a VM's vCPUs spent on physical CPUs, in percent.",
                {"vm": (str, True)}),
    MeasureSpec("ready_percent", _ready_percent,
                "The share of the step's guest time a VM's vCPUs were runnable but waiting (%RDY).",
                {"vm": (str, True)}),
    MeasureSpec("resident_mib", _resident_mib, "Host RAM (MiB) backing a VM's memory after the step.",
                {"vm": (str, True)}),
    MeasureSpec("frames_in_common", _frames_in_common,
                "How many host frames all the listed VMs map at once (their frame tables overlap).",
                {"vms": (list, True)}),
    MeasureSpec("console_match", _console_match,
                "A regular expression's first group in what a VM printed during the step.",
                {"vm": (str, True), "regex": (str, True)}),
    MeasureSpec("report", _report, "A value of the run report by dotted path (vms.NAME.cpu.ready_seconds).",
                {"path": (str, True)}),
)}
