"""The lesson format (version 1): ``lessons/index.toml`` and each ``NN_slug/lesson.toml``.

A lesson is a machine config plus ordered steps. A step has Markdown ``text``,
optional ``action``s on the machine, the condition that completes it (``until``: an
event or console text), a ``hint``, what to ``highlight`` in the GUI, which event
kinds to ``show``, and optionally a prediction (``predict``) the student makes before
the step runs, checked against what the machine then does.

Every name (action, condition, measure, highlight) comes from a table in this
package; a typo is a ``LessonFormatError`` naming the file, the step and the key.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lessons import LESSONS_DIR
from lessons.engine.actions import ACTIONS
from lessons.engine.conditions import CONDITIONS
from lessons.engine.measures import MEASURES
from lessons.engine.requirements import missing_features
from sandbox.errors import SandboxError

FORMAT_VERSION = 1
DEFAULT_LIMIT_MS = 2000        # guest time a step may run while waiting for its event

# What a step may ask the GUI to highlight: "kind:what". One line each for the docs.
HIGHLIGHTS: dict[str, str] = {
    "layer": "a layer of the three-layer picture: hardware, hypervisor or vm",
    "vm": "one virtual machine, by name",
    "vcpu": "one virtual CPU, as VM/index (hello/0)",
    "device": "one virtual device of a VM, as VM/device (hello/com1)",
    "host": "a part of the physical host: cpuN, ram, disk",
    "hypervisor": "a part of the hypervisor: scheduler, memory_manager, dispatcher, firmware",
}
LAYERS = ("hardware", "hypervisor", "vm")
STEP_KEYS = ("title", "text", "action", "until", "hint", "highlight", "show", "limit_ms", "predict")
LESSON_KEYS = ("title", "summary", "machine", "requires", "step")
PREDICT_KEYS = ("question", "measure", "choices", "expect")


class LessonFormatError(SandboxError):
    """A lesson file that does not follow the format."""


@dataclass(frozen=True)
class Action:
    do: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Condition:
    kind: str                   # a key of CONDITIONS: "event" or "console"
    params: dict[str, Any]


@dataclass(frozen=True)
class Choice:
    label: str
    lo: float | None = None     # numeric choices: lo <= value < hi
    hi: float | None = None

    def matches(self, value: Any) -> bool:
        if self.lo is None and self.hi is None:
            return str(value).lower() == self.label.lower()
        if not isinstance(value, (int, float)):
            return False
        return (self.lo is None or value >= self.lo) and (self.hi is None or value < self.hi)


@dataclass(frozen=True)
class Prediction:
    question: str
    measure: str                # a key of MEASURES
    params: dict[str, Any]
    choices: tuple[Choice, ...]
    expect: str | None = None   # the choice the authors expect (the tests check it)


@dataclass(frozen=True)
class Step:
    title: str
    text: str
    actions: tuple[Action, ...] = ()
    until: Condition | None = None
    hint: str = ""
    highlight: tuple[str, ...] = ()
    show: tuple[str, ...] = ()
    limit_ms: float = DEFAULT_LIMIT_MS
    predict: Prediction | None = None


@dataclass(frozen=True)
class Lesson:
    number: int
    slug: str
    folder: Path
    title: str
    summary: str
    machine: Path
    steps: tuple[Step, ...]
    requires: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.folder.name


@dataclass(frozen=True)
class LessonEntry:
    """One line of the index: enough to list a lesson without building anything."""
    number: int
    folder: Path
    title: str
    summary: str
    missing: tuple[str, ...] = field(default=())     # requirements not met yet

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def available(self) -> bool:
        return not self.missing


# --- reading -------------------------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise LessonFormatError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise LessonFormatError(f"{path}: not valid TOML ({e})") from None


def _unknown(where: str, keys: Any, known: Any) -> None:
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
            raise LessonFormatError(f"{where}: unknown key '{key}'{hint}")


def _check_params(where: str, given: dict[str, Any], spec: dict[str, tuple[type | tuple, bool]]) -> None:
    _unknown(where, given, spec)
    for name, (types, required) in spec.items():
        if name not in given:
            if required:
                raise LessonFormatError(f"{where}: missing '{name}'")
            continue
        value = given[name]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)) \
                or not isinstance(value, types):
            raise LessonFormatError(f"{where}: '{name}' has the wrong type ({value!r})")


def _named(where: str, table: dict[str, Any], name: Any, what: str) -> Any:
    if name not in table:
        close = difflib.get_close_matches(str(name), list(table), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(table)})"
        raise LessonFormatError(f"{where}: unknown {what} '{name}'{hint}")
    return table[name]


def _action(where: str, raw: Any) -> Action:
    if not isinstance(raw, dict) or "do" not in raw:
        raise LessonFormatError(f"{where}: 'action' must be a table with 'do'")
    params = {k: v for k, v in raw.items() if k != "do"}
    spec = _named(where, ACTIONS, raw["do"], "action")
    _check_params(f"{where} action '{raw['do']}'", params, spec.params)
    return Action(raw["do"], params)


def _actions(where: str, raw: Any) -> tuple[Action, ...]:
    """``action = { do = ... }`` or ``action = [{ do = ... }, { do = ... }]`` (in order)."""
    return tuple(_action(where, a) for a in (raw if isinstance(raw, list) else [raw]))


def _condition(where: str, raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise LessonFormatError(f"{where}: 'until' must be a table")
    kinds = [k for k in raw if k in CONDITIONS]
    if len(kinds) != 1:
        raise LessonFormatError(f"{where}: 'until' needs exactly one of {', '.join(CONDITIONS)}")
    spec = CONDITIONS[kinds[0]]
    _check_params(f"{where} until", raw, spec.params)
    if kinds[0] == "event":
        _named(f"{where} until", _event_kinds(), raw["event"], "event kind")
    return Condition(kinds[0], dict(raw))


def _choice(where: str, raw: Any) -> Choice:
    if isinstance(raw, str):
        return Choice(raw)
    if isinstance(raw, dict) and isinstance(raw.get("label"), str):
        _unknown(f"{where} choice", raw, ("label", "min", "max"))
        return Choice(raw["label"], raw.get("min"), raw.get("max"))
    raise LessonFormatError(f"{where}: a choice is a string or {{ label, min, max }}, not {raw!r}")


def _prediction(where: str, raw: Any) -> Prediction:
    if not isinstance(raw, dict):
        raise LessonFormatError(f"{where}: 'predict' must be a table")
    for key in ("question", "measure", "choices"):
        if key not in raw:
            raise LessonFormatError(f"{where} predict: missing '{key}'")
    spec = _named(f"{where} predict", MEASURES, raw["measure"], "measure")
    params = {k: v for k, v in raw.items() if k not in PREDICT_KEYS}
    _check_params(f"{where} predict '{raw['measure']}'", params, spec.params)
    choices = tuple(_choice(f"{where} predict", c) for c in raw["choices"])
    if len(choices) < 2:
        raise LessonFormatError(f"{where} predict: needs at least two choices")
    expect = raw.get("expect")
    if expect is not None and expect not in [c.label for c in choices]:
        raise LessonFormatError(f"{where} predict: expect '{expect}' is not one of the choices")
    return Prediction(raw["question"], raw["measure"], params, choices, expect)


def _highlight(where: str, item: Any) -> str:
    kind, _, what = str(item).partition(":")
    _named(f"{where} highlight", HIGHLIGHTS, kind, "highlight")
    if not what or (kind == "layer" and what not in LAYERS):
        raise LessonFormatError(f"{where}: highlight '{item}' needs kind:what ({HIGHLIGHTS[kind]})")
    return str(item)


def _event_kinds() -> dict[str, Any]:
    from sandbox.events import EVENT_KINDS   # noqa: PLC0415
    return EVENT_KINDS


def parse_step(where: str, raw: dict[str, Any]) -> Step:
    if not isinstance(raw, dict):
        raise LessonFormatError(f"{where}: a step must be a table")
    _unknown(where, raw, STEP_KEYS)
    if not isinstance(raw.get("text"), str):
        raise LessonFormatError(f"{where}: missing 'text'")
    show = tuple(raw.get("show", ()))
    for kind in show:
        _named(f"{where} show", _event_kinds(), kind, "event kind")
    return Step(
        title=str(raw.get("title", "")),
        text=raw["text"].strip(),
        actions=_actions(where, raw["action"]) if "action" in raw else (),
        until=_condition(where, raw["until"]) if "until" in raw else None,
        hint=str(raw.get("hint", "")).strip(),
        highlight=tuple(_highlight(where, h) for h in raw.get("highlight", ())),
        show=show,
        limit_ms=float(raw.get("limit_ms", DEFAULT_LIMIT_MS)),
        predict=_prediction(where, raw["predict"]) if "predict" in raw else None,
    )


def _number(folder: Path) -> int:
    prefix = folder.name.split("_", 1)[0]
    if not prefix.isdigit():
        raise LessonFormatError(f"{folder}: a lesson folder is named NN_slug")
    return int(prefix)


def load_lesson(folder: Path) -> Lesson:
    path = folder / "lesson.toml"
    data = _read_toml(path)
    _unknown(str(path), data, LESSON_KEYS)
    for key in ("title", "machine"):
        if not isinstance(data.get(key), str):
            raise LessonFormatError(f"{path}: missing '{key}'")
    machine = folder / data["machine"]
    if not machine.is_file():
        raise LessonFormatError(f"{path}: machine config '{data['machine']}' not found")
    raw_steps = data.get("step", [])
    if not raw_steps:
        raise LessonFormatError(f"{path}: a lesson needs at least one [[step]]")
    steps = tuple(parse_step(f"{path} step {i + 1}", s) for i, s in enumerate(raw_steps))
    return Lesson(_number(folder), folder.name.split("_", 1)[-1], folder, data["title"],
                  str(data.get("summary", "")).strip(), machine, steps, tuple(data.get("requires", ())))


def load_index(root: Path = LESSONS_DIR) -> list[LessonEntry]:
    path = root / "index.toml"
    data = _read_toml(path)
    _unknown(str(path), data, ("format", "lessons"))
    if data.get("format") != FORMAT_VERSION:
        raise LessonFormatError(f"{path}: format {data.get('format')!r} is not supported "
                                f"(this sandbox reads format {FORMAT_VERSION})")
    entries = []
    for position, name in enumerate(data.get("lessons", []), start=1):
        folder = root / name
        if _number(folder) != position:
            raise LessonFormatError(f"{path}: lesson '{name}' is number {position} in the list")
        head = _read_toml(folder / "lesson.toml")
        entries.append(LessonEntry(position, folder, str(head.get("title", name)),
                                   str(head.get("summary", "")).strip(),
                                   missing_features(head.get("requires", ()))))
    return entries


def find_lesson(key: str | int, root: Path = LESSONS_DIR) -> LessonEntry:
    """A lesson by number (``3``), folder (``03_vm_layer``) or slug (``vm_layer``)."""
    entries = load_index(root)
    text = str(key)
    for e in entries:
        if text.isdigit() and int(text) == e.number or text in (e.id, e.id.split("_", 1)[-1]):
            return e
    known = ", ".join(f"{e.number} ({e.id})" for e in entries)
    raise LessonFormatError(f"no lesson '{key}' (lessons: {known})")
