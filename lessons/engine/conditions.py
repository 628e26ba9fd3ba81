"""What completes a lesson step: a table of conditions.

``event``: an event of that kind arrives (optionally from one VM, with some data:
strings match as case-insensitive substrings, everything else must be equal).
``console``: a VM prints that text on its serial console (its ``serial.tx`` events).

Events are consumed in order: a step looks from the point where the previous step
stopped, so a step can explain an event that an earlier action already caused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from lessons.engine.player import StepSession
    from sandbox.events import Event


@dataclass(frozen=True)
class Match:
    index: int | None         # position in the event log (event conditions)
    text: str                 # what happened, for the student


@dataclass(frozen=True)
class ConditionSpec:
    name: str
    find: Callable[["StepSession", dict[str, Any]], Match | None]
    describe: Callable[[dict[str, Any]], str]
    description: str
    params: dict[str, tuple[Any, bool]]


def event_matches(ev: "Event", params: dict[str, Any]) -> bool:
    if ev.kind != params["event"]:
        return False
    if params.get("vm") is not None and ev.vm != params["vm"]:
        return False
    for key, want in params.get("data", {}).items():
        have = ev.data.get(key)
        if isinstance(want, str) and isinstance(have, str):
            if want.lower() not in have.lower():
                return False
        elif have != want:
            return False
    return True


def _find_event(session: "StepSession", params: dict[str, Any]) -> Match | None:
    log = session.events
    for i in range(max(session.cursor, session.scanned), len(log)):
        if event_matches(log[i], params):
            return Match(i, format_event(log[i]))
    session.scanned = len(log)          # checked each scheduling round: never rescan
    return None


def _describe_event(params: dict[str, Any]) -> str:
    where = f" from {params['vm']}" if params.get("vm") else ""
    data = ", ".join(f"{k}={v!r}" for k, v in params.get("data", {}).items())
    return f"event {params['event']}{where}" + (f" with {data}" if data else "")


def _find_console(session: "StepSession", params: dict[str, Any]) -> Match | None:
    text, where = session.console(params["vm"])
    pos = text.find(params["console"].encode("latin-1"))
    if pos < 0:
        return None
    return Match(where[pos + len(params["console"]) - 1], f"{params['vm']} printed {params['console']!r}")


def _describe_console(params: dict[str, Any]) -> str:
    return f"{params['vm']} printing {params['console']!r} on its console"


def format_event(ev: "Event") -> str:
    """``[hypervisor] exit.io hello port=0x3f8 ...`` with ports and addresses in hex."""
    parts = []
    for key, value in ev.data.items():
        if key == "byte" and isinstance(value, int):
            value = f"{value:#04x}" + (f" {chr(value)!r}" if 32 <= value < 127 else "")
        elif isinstance(value, int) and not isinstance(value, bool) and key in HEX_FIELDS \
                and (key != "port" or ev.kind in IO_PORT_KINDS):
            value = hex(value)
        parts.append(f"{key}={value}")
    who = f" {ev.vm}" if ev.vm else ""
    return f"[{ev.layer.value}] {ev.kind}{who} {' '.join(parts)}".rstrip()


HEX_FIELDS = {"port", "value", "eip", "addr", "gpa", "address", "entry", "vector", "ah",
              "gfn", "hfn", "old_hfn"}
IO_PORT_KINDS = {"exit.io", "io.unknown_port"}      # elsewhere "port" is a switch port number

CONDITIONS: dict[str, ConditionSpec] = {c.name: c for c in (
    ConditionSpec("event", _find_event, _describe_event,
                  "An event of this kind (from vm, with data) arrives.",
                  {"event": (str, True), "vm": (str, False), "data": (dict, False)}),
    ConditionSpec("console", _find_console, _describe_console,
                  "The VM prints this text on its serial console during the step.",
                  {"console": (str, True), "vm": (str, True)}),
)}
