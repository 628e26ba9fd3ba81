"""``sandbox lesson``: list the lessons and play one in the terminal."""
from __future__ import annotations

import argparse
import sys

from lessons.engine.format import find_lesson, load_index, load_lesson
from lessons.engine.progress import Progress
from lessons.engine.terminal import TerminalPlayer
from sandbox.errors import SandboxError


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lesson_command", metavar="ACTION", required=True)
    listing = sub.add_parser("list", help="list the lessons and your progress")
    play = sub.add_parser("play", help="play a lesson step by step (Enter to advance)")
    play.add_argument("lesson", help="lesson number, folder or slug (e.g. 2 or vm_exit)")
    play.add_argument("--restart", action="store_true", help="start from step 1, not from your saved step")
    play.add_argument("--auto", action="store_true", help="play every step without stopping (no predictions)")
    for q in (listing, play):
        q.add_argument("--workspace", default=None, metavar="DIR",
                       help="where progress is kept (default $SANDBOX_WORKSPACE or ~/.sandbox)")


def run(args: argparse.Namespace) -> int:
    progress = Progress(args.workspace)
    if args.lesson_command == "list":
        return list_lessons(progress)
    entry = find_lesson(args.lesson)
    if not entry.available:
        raise SandboxError(f"lesson {entry.number} needs {', '.join(entry.missing)}, "
                           "which this sandbox does not have yet")
    auto = args.auto or not sys.stdin.isatty()
    player = TerminalPlayer(load_lesson(entry.folder), progress, sys.stdout, None if auto else input)
    failures = player.play(restart=args.restart)
    return 1 if failures else 0


def list_lessons(progress: Progress) -> int:
    for e in load_index():
        state = progress.lesson(e.id)
        if not e.available:
            mark = "waiting for " + ", ".join(e.missing)
        elif state.get("completed"):
            mark = "done"
        elif state.get("next_step"):
            mark = f"at step {state['next_step'] + 1}/{state.get('steps', '?')}"
        else:
            mark = ""
        print(f"{e.number:2d}  {e.title:<74}  {mark}".rstrip())
    return 0
