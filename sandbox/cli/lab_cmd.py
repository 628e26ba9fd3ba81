"""``sandbox lab``: list the labs, start one, check it, grade it.

    sandbox lab list
    sandbox lab start LAB DIR          copy the README, starter files and public tests
    sandbox lab check LAB [DIR]        run the tests: one line each, hints, score: x/y
    sandbox lab grade LAB DIR --json   score as JSON; writes results.json and junit.xml

``check`` and ``grade`` exit with status 1 unless every test passes, so any CI can
grade a student repository.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from lessons.labkit.grade import grade, text_report, write_outputs
from lessons.labkit.labs import LabError, find_lab, list_labs, start_lab


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the labs")
    start = sub.add_parser("start", help="copy a lab's starter files and tests into a new folder")
    start.add_argument("lab", help="lab number, folder or slug")
    start.add_argument("dir", help="the folder to create")
    check = sub.add_parser("check", help="run a lab's tests on your folder and print the score")
    check.add_argument("lab")
    check.add_argument("dir", nargs="?", default=".", help="your lab folder (default: here)")
    gr = sub.add_parser("grade", help="grade a folder: results.json (Gradescope) and junit.xml")
    gr.add_argument("lab")
    gr.add_argument("dir", help="the student's lab folder")
    gr.add_argument("--json", action="store_true", help="print the score and every test as JSON")
    gr.add_argument("--out", default=None, metavar="DIR", help="where to write the reports (default: DIR)")


def _lab(key: str):
    lab = find_lab(key)
    if not lab.available:
        raise LabError(f"lab {lab.number} needs {', '.join(lab.missing)}, "
                       "which this sandbox does not have yet")
    return lab


def run(args: argparse.Namespace) -> int:
    if args.lab_command == "list":
        for lab in list_labs():
            waiting = "" if lab.available else f"   (waiting for {', '.join(lab.missing)})"
            print(f"{lab.number:2d}  {lab.title}{waiting}")
        return 0
    lab = _lab(args.lab)
    if args.lab_command == "start":
        dest = Path(args.dir)
        start_lab(lab, dest)
        print(f"lab {lab.number} is in {dest}: read README.md, then `sandbox lab check {lab.number} {dest}`")
        return 0
    result = grade(lab, Path(args.dir))
    if args.lab_command == "check":
        print(f"lab {lab.number}: {lab.title}")
        print(text_report(result))
    else:
        results, junit = write_outputs(result, Path(args.out or args.dir))
        if args.json:
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(result.summary())
            print(f"wrote {results} and {junit}")
    return 0 if result.full_marks else 1
