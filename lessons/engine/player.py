"""The step player: plays a lesson's steps on a real machine, one at a time.

    player = LessonPlayer(load_lesson(folder))
    while not player.finished:
        step = player.current_step            # show step.text, ask step.predict.question
        result = player.play_step(choice)     # act, wait for the event, check the prediction
    player.close()

The terminal player (``terminal.py``), the GUI panel (``gui/lesson_panel.py``) and the
tests all drive this one class. The machine runs in the default deterministic mode,
so a lesson plays the same on every computer, and resuming at step N simply replays
steps 1..N-1 silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lessons.engine.actions import ACTIONS, NS_PER_MS
from lessons.engine.conditions import CONDITIONS, Match
from lessons.engine.format import Lesson, Step
from lessons.engine.measures import MEASURES
from sandbox.api import Machine
from sandbox.errors import SandboxError
from sandbox.events import Event, EventBus

# Kinds every lesson watches: the life of each VM and anything that goes wrong.
ALWAYS_WATCH = ("serial.tx", "vm.created", "power.allocate_vcpus", "power.allocate_ram", "power.open_disk",
                "power.firmware_boot_read", "power.guest_start", "power.network_attached",
                "power.running", "vm.stopped", "vm.paused", "vm.resumed", "vm.reset",
                "cpu.triple_fault", "mem.isolation", "sched.policy_error")
ALWAYS_SHOW = ("vm.stopped", "cpu.triple_fault", "sched.policy_error")
SHOW_PER_KIND = 8                 # events of one kind listed per step: the first and last four
STEP_WALL_LIMIT_S = 60.0          # a step never runs longer than this in wall time


@dataclass
class PredictionResult:
    question: str
    chosen: str | None            # the student's choice (None: skipped)
    value: Any                    # what was measured
    answer: str | None            # the choice that matches the measurement
    correct: bool | None          # None when the student did not predict


@dataclass
class StepResult:
    number: int                   # 1-based
    step: Step
    completed: bool
    match: str = ""               # the event (or output) that completed the step
    notes: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)      # the events to show
    more: dict[str, int] = field(default_factory=dict)     # kind -> events not listed
    console: dict[str, str] = field(default_factory=dict)  # VM -> what it printed
    prediction: PredictionResult | None = None
    error: str = ""

    @property
    def hint(self) -> str:
        return "" if self.completed else self.step.hint


class StepSession:
    """What an action, a condition and a measurement see while one step plays."""

    def __init__(self, player: "LessonPlayer", step: Step) -> None:
        self.player = player
        self.step = step
        self.machine = player.machine
        self.events = player.events
        self.cursor = player.cursor
        self.scanned = player.cursor
        self.end: int | None = None
        self.notes: list[str] = []
        self.start_ns = self.machine.now_ns
        self.start_run_ns = {name: self.run_ns(name) for name in self.machine.vms}
        self.start_ready_ns = {name: self.ready_ns(name) for name in self.machine.vms}
        self._console: dict[str, tuple[bytearray, list[int]]] = {}   # VM -> (bytes, event index of each)
        self._console_scanned = self.cursor

    def note(self, line: str) -> None:
        self.notes.append(line)

    def run_ns(self, vm_name: str) -> int:
        return sum(c.stats.run_ns for c in self.machine.vms[vm_name].vcpus)

    def ready_ns(self, vm_name: str) -> int:
        settle = getattr(self.machine.hypervisor.scheduler, "settle", None)
        if settle is not None:              # account the waiting stretch in progress
            settle(self.machine.now_ns)
        return sum(c.stats.ready_ns for c in self.machine.vms[vm_name].vcpus)

    def console(self, vm_name: str) -> tuple[bytearray, list[int]]:
        """What ``vm_name`` printed since the step's cursor, from its serial.tx events,
        with the event index of every byte (so a console match has a place in the log)."""
        for i in range(self._console_scanned, len(self.events)):
            ev = self.events[i]
            if ev.kind == "serial.tx" and ev.vm is not None:
                text, where = self._console.setdefault(ev.vm, (bytearray(), []))
                text.append(ev.data["byte"])
                where.append(i)
        self._console_scanned = len(self.events)
        return self._console.get(vm_name, (bytearray(), []))

    def console_text(self, vm_name: str) -> str:
        """What ``vm_name`` printed during the step (up to the event that completed it)."""
        text, where = self.console(vm_name)
        end = self.end if self.end is not None else len(self.events)
        return bytes(b for b, i in zip(text, where) if i < end).decode("latin-1")

    def step_events(self) -> list[Event]:
        return self.events[self.cursor:self.end if self.end is not None else len(self.events)]

    def find(self) -> Match | None:
        until = self.step.until
        return CONDITIONS[until.kind].find(self, until.params) if until is not None else None

    def run_for(self, guest_ns: int) -> str:
        """Run the machine up to ``guest_ns`` more guest time; stop early as soon as the
        step's condition holds. Returns the machine's outcome."""
        stop: Callable[[], bool] = (lambda: self.find() is not None) if self.step.until else (lambda: False)
        if stop():
            return "done"
        return self.machine.run(until_ns=self.machine.now_ns + guest_ns,
                                wall_timeout_s=STEP_WALL_LIMIT_S, should_stop=stop)


class LessonPlayer:
    def __init__(self, lesson: Lesson) -> None:
        self.lesson = lesson
        bus = EventBus()                           # subscribed before the VMs exist: vm.created too
        self.events: list[Event] = []
        self._unsubscribe = bus.subscribe(self.events.append, watched_kinds(lesson))
        self.machine = Machine(lesson.machine, bus)
        self.index = 0                # the next step to play (0-based)
        self.cursor = 0               # events before this were consumed by earlier steps
        self.results: list[StepResult] = []
        self.listeners: list[Callable[[StepResult], None]] = []

    # --- where we are -------------------------------------------------------------------
    @property
    def steps(self) -> tuple[Step, ...]:
        return self.lesson.steps

    @property
    def finished(self) -> bool:
        return self.index >= len(self.steps)

    @property
    def current_step(self) -> Step | None:
        return None if self.finished else self.steps[self.index]

    # --- playing ----------------------------------------------------------------------------
    def play_step(self, choice: int | str | None = None) -> StepResult:
        """Play the current step. ``choice``: the student's prediction (an index into
        the choices or a label), or None to skip predicting."""
        step = self.current_step
        if step is None:
            raise SandboxError(f"lesson {self.lesson.number} has no more steps")
        session = StepSession(self, step)
        result = StepResult(self.index + 1, step, completed=False)
        match: Match | None = None
        try:
            for action in step.actions:
                ACTIONS[action.do].run(session, action.params)
            if step.until is not None:
                match = session.find()
                if match is None and self.machine.hypervisor.active_vms:
                    session.run_for(int(step.limit_ms * NS_PER_MS))
                    match = session.find()
        except SandboxError as e:
            result.error = str(e)
        result.completed = not result.error and (step.until is None or match is not None)
        if match is not None:
            result.match = match.text
        session.end = match.index + 1 if match is not None and match.index is not None else len(self.events)
        result.notes = session.notes
        result.events, result.more = self._shown(session, match)
        result.console = {n: t for n in self.machine.vms if (t := session.console_text(n))}
        if step.predict is not None:
            result.prediction = resolve_prediction(session, step, choice)
        self.cursor = session.end
        self.index += 1
        self.results.append(result)
        for listener in list(self.listeners):
            listener(result)
        return result

    def fast_forward(self, count: int) -> None:
        """Replay the first ``count`` steps without predictions (resuming a lesson)."""
        while self.index < min(count, len(self.steps)):
            self.play_step(None)

    def play_all(self, choose: Callable[[Step], int | str | None] | None = None) -> list[StepResult]:
        """Play every remaining step headless; ``choose`` answers the predictions."""
        while not self.finished:
            step = self.current_step
            self.play_step(choose(step) if choose is not None and step.predict is not None else None)
        return self.results

    def _shown(self, session: StepSession, match: Match | None) -> tuple[list[Event], dict[str, int]]:
        kinds = set(session.step.show) | set(ALWAYS_SHOW)
        if session.step.until is not None and session.step.until.kind == "event":
            kinds.add(session.step.until.params["event"])
        by_kind: dict[str, list[int]] = {}
        window = session.step_events()
        for i, ev in enumerate(window):
            if ev.kind in kinds:
                by_kind.setdefault(ev.kind, []).append(i)
        keep: set[int] = set()
        more: dict[str, int] = {}
        half = SHOW_PER_KIND // 2
        for kind, where in by_kind.items():       # the first few and the last few of each kind
            chosen = where if len(where) <= SHOW_PER_KIND else where[:half] + where[-half:]
            keep.update(chosen)
            if len(where) > len(chosen):
                more[kind] = len(where) - len(chosen)
        return [window[i] for i in sorted(keep)], more

    def close(self) -> None:
        self._unsubscribe()
        self.machine.close()

    def __enter__(self) -> "LessonPlayer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve_prediction(session: StepSession, step: Step, choice: int | str | None) -> PredictionResult:
    pred = step.predict
    assert pred is not None
    labels = [c.label for c in pred.choices]
    value = MEASURES[pred.measure].measure(session, pred.params, labels)
    answer = next((c.label for c in pred.choices if c.matches(value)), None) if value is not None else None
    chosen = labels[choice] if isinstance(choice, int) and 0 <= choice < len(labels) else \
        (choice if isinstance(choice, str) and choice in labels else None)
    correct = None if chosen is None else chosen == answer
    return PredictionResult(pred.question, chosen, value, answer, correct)


def watched_kinds(lesson: Lesson) -> set[str]:
    """Only the kinds a lesson needs: an unwatched I/O exit costs nothing."""
    kinds = set(ALWAYS_WATCH)
    for step in lesson.steps:
        kinds.update(step.show)
        if step.until is not None and step.until.kind == "event":
            kinds.add(step.until.params["event"])
        pred = step.predict
        if pred is None:
            continue
        if pred.measure == "next_event":
            kinds.update(pred.params.get("kinds", [c.label for c in pred.choices]))
        if "kind" in pred.params:
            kinds.add(pred.params["kind"])
    return kinds
