"""Lesson progress, kept in a JSON file in the user's workspace.

The workspace is ``$SANDBOX_WORKSPACE`` or ``~/.sandbox``; the file is
``lesson-progress.json``::

    {"format": 1,
     "lessons": {"02_vm_exit": {"next_step": 3, "steps": 6, "completed": false,
                               "predictions": {"2": {"chosen": "exit.io", "answer": "exit.bios",
                                                     "correct": false}}}}}

Only what the student did is stored, never a wall-clock time, so two runs of the same
lesson leave the same file.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.errors import SandboxError

if TYPE_CHECKING:
    from lessons.engine.format import Lesson
    from lessons.engine.player import StepResult

PROGRESS_FILE = "lesson-progress.json"
FORMAT = 1


def default_workspace() -> Path:
    return Path(os.environ.get("SANDBOX_WORKSPACE") or Path.home() / ".sandbox").expanduser()


class Progress:
    def __init__(self, workspace: Path | str | None = None) -> None:
        self.path = Path(workspace or default_workspace()) / PROGRESS_FILE
        self.data: dict[str, Any] = {"format": FORMAT, "lessons": {}}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text())
            except (OSError, ValueError) as e:
                raise SandboxError(f"{self.path}: cannot read lesson progress ({e}); "
                                   "delete the file to start over") from None
            if not isinstance(loaded, dict) or not isinstance(loaded.get("lessons"), dict):
                raise SandboxError(f"{self.path}: not a lesson progress file; delete it to start over")
            self.data = loaded

    def lesson(self, lesson_id: str) -> dict[str, Any]:
        return self.data["lessons"].get(lesson_id, {})

    def next_step(self, lesson_id: str) -> int:
        """0-based index of the step to play next (0 when the lesson is new or done)."""
        entry = self.lesson(lesson_id)
        return 0 if entry.get("completed") else int(entry.get("next_step", 0))

    def record(self, lesson_id: str, steps: int, next_step: int, prediction: dict[str, Any] | None = None,
               step_number: int | None = None) -> None:
        entry = self.data["lessons"].setdefault(lesson_id, {"next_step": 0, "steps": steps,
                                                           "completed": False, "predictions": {}})
        entry["steps"] = steps
        entry["next_step"] = next_step
        entry["completed"] = entry.get("completed", False) or next_step >= steps
        if prediction is not None and step_number is not None:
            entry.setdefault("predictions", {})[str(step_number)] = prediction
        self.save()

    def record_step(self, lesson: "Lesson", next_step: int, result: "StepResult") -> None:
        """Save where the student is after ``result``, with their prediction if they made one."""
        pred = result.prediction
        chosen = dataclasses.asdict(pred) if pred is not None and pred.chosen is not None else None
        self.record(lesson.id, len(lesson.steps), next_step, chosen, result.number)

    def reset(self, lesson_id: str) -> None:
        self.data["lessons"].pop(lesson_id, None)
        self.save()

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True, default=str) + "\n")
            tmp.replace(self.path)
        except OSError as e:
            raise SandboxError(f"{self.path}: cannot save lesson progress ({e.strerror})") from None
