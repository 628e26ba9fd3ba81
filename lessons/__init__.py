"""Step-through lessons and pytest-graded labs for the sandbox.

    lessons/index.toml          the ordered list of lessons (format version 1)
    lessons/NN_slug/            one lesson: lesson.toml, machine configs, lesson guests
    lessons/engine/             format loader, step player, predictions, progress state
    lessons/labs/NN_slug/       one lab: README.md, starter/, tests/, solution/
    lessons/labkit/             the pytest plugin lab tests use, and the grader

Play a lesson with ``sandbox lesson play 1``; work on a lab with ``sandbox lab start``.
See docs/lessons.md for the formats.
"""
from pathlib import Path

LESSONS_DIR = Path(__file__).resolve().parent
LABS_DIR = LESSONS_DIR / "labs"
