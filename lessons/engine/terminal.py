"""Play a lesson in a terminal: text, events and console output; Enter to advance.

Input and output are parameters so that tests (and ``--auto``) drive the same code.
Typing ``q`` at a prompt stops; progress is saved after every step.
"""
from __future__ import annotations

import textwrap
from typing import Callable, TextIO

from lessons.engine.conditions import CONDITIONS, format_event
from lessons.engine.format import Lesson, Step
from lessons.engine.player import LessonPlayer, StepResult
from lessons.engine.progress import Progress
from sandbox.events import EVENT_KINDS

RULE = "-" * 72


class Quit(Exception):
    """The student typed q."""


class TerminalPlayer:
    def __init__(self, lesson: Lesson, progress: Progress | None, out: TextIO,
                 ask: Callable[[str], str] | None = None) -> None:
        self.lesson = lesson
        self.progress = progress
        self.out = out
        self.ask = ask                     # None: play without stopping (--auto)
        self._explained: set[str] = set()

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def prompt(self, question: str) -> str:
        if self.ask is None:
            return ""
        answer = self.ask(question).strip()
        if answer.lower() in ("q", "quit"):
            raise Quit
        return answer

    # --- the whole lesson ---------------------------------------------------------------
    def play(self, restart: bool = False) -> int:
        """Play from the saved step (or from the start); returns the number of steps that
        did not complete."""
        lesson = self.lesson
        start = 0 if restart or self.progress is None else self.progress.next_step(lesson.id)
        self.say(f"Lesson {lesson.number}: {lesson.title}")
        if lesson.summary:
            self.say(textwrap.fill(lesson.summary, 72))
        failures = 0
        with LessonPlayer(lesson) as player:
            if start:
                self.say(f"(resuming at step {start + 1}: replaying steps 1-{start} first)")
                player.fast_forward(start)
            try:
                while not player.finished:
                    result = self.play_one(player)
                    failures += not result.completed
                    if self.progress is not None:
                        self.progress.record_step(lesson, player.index, result)
            except Quit:
                self.say(f"Stopped at step {player.index + 1}; "
                         f"`sandbox lesson play {lesson.number}` resumes.")
                return failures
        self.say(RULE)
        tail = f" {failures} step(s) did not complete." if failures else ""
        self.say(f"End of lesson {lesson.number}.{tail}")
        return failures

    # --- one step ---------------------------------------------------------------------------
    def play_one(self, player: LessonPlayer) -> StepResult:
        step = player.current_step
        assert step is not None
        number = player.index + 1
        self.say(RULE)
        self.say(f"Step {number}/{len(player.steps)}" + (f": {step.title}" if step.title else ""))
        self.say()
        self.say(step.text)
        self.say()
        choice = self.ask_prediction(step)
        if choice is None and step.predict is None:
            self.prompt("[Enter: run this step, q: quit] " if step.actions or step.until else "[Enter] ")
        result = player.play_step(choice)
        self.show(result)
        return result

    def ask_prediction(self, step: Step) -> int | None:
        pred = step.predict
        if pred is None:
            return None
        self.say(f"Predict: {pred.question}")
        for i, c in enumerate(pred.choices, start=1):
            self.say(f"  {i}) {c.label}")
        while True:
            answer = self.prompt(f"Your prediction [1-{len(pred.choices)}, Enter to skip, q to quit]: ")
            if not answer:
                return None
            if answer.isdigit() and 1 <= int(answer) <= len(pred.choices):
                return int(answer) - 1
            self.say(f"  (type a number from 1 to {len(pred.choices)})")

    def show(self, result: StepResult) -> None:
        for line in result.notes:
            self.say(f"  > {line}")
        for ev in result.events:
            self.say(f"  t={ev.time_ns / 1e6:9.3f} ms  {format_event(ev)}")
            if ev.kind not in self._explained:
                self._explained.add(ev.kind)
                self.say(f"  {'':14} ({EVENT_KINDS[ev.kind].description})")
        for kind, n in result.more.items():
            self.say(f"  ({n} more {kind} events in between are not listed)")
        for vm, text in result.console.items():
            for line in text.replace("\r", "").splitlines():
                self.say(f"  [{vm} COM1] {line}")
        if result.error:
            self.say(f"Problem: {result.error}")
        if result.completed:
            if result.match:
                self.say(f"Done: {result.match}")
        else:
            until = result.step.until
            waited = CONDITIONS[until.kind].describe(until.params) if until else "the step"
            self.say(f"Not completed: no {waited} within {result.step.limit_ms:g} ms of guest time.")
            if result.hint:
                self.say(f"Hint: {result.hint}")
        pred = result.prediction
        if pred is not None:
            measured = f"{pred.value:.1f}" if isinstance(pred.value, float) else str(pred.value)
            what = f"the machine says: {pred.answer or 'none of the choices'} (measured: {measured})"
            if pred.chosen is None:
                self.say(f"Prediction: {what}")
            else:
                verdict = "right" if pred.correct else "not this time"
                self.say(f"Prediction: you said {pred.chosen}; {what}: {verdict}.")
