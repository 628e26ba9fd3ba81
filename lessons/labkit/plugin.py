"""The pytest plugin for lab tests (entry point ``pytest11: sandbox_lab``).

It gives lab tests:

* the ``points`` marker: ``@pytest.mark.points(3, hint="...")``, the test's worth
  and what to tell a student whose code fails it;
* fixtures: ``lab_dir`` (the student's folder), ``lab_file`` (a file in it, or a
  clear failure), ``student_module`` (import a student's Python file; a syntax
  error fails the tests that need it, with file and line), ``boot_sector``
  (assemble a .S file), ``boot`` (run a disk image or a machine to completion in
  deterministic mode and return what happened) and ``make_machine``;
* ``--lab-timeout``: a wall-clock limit per test, so a looping guest or policy
  costs its tests' points instead of hanging the grading;
* ``--lab-results FILE``: every test's outcome and points as JSON, for the grader.

Installed as an entry point, it is inert in any test run that does not use it.
"""
from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from lessons.labkit.fixtures import (  # noqa: F401  (fixtures are found by name)
    boot,
    boot_sector,
    lab_dir,
    lab_file,
    make_machine,
    student_module,
)


class LabTimeout(BaseException):
    """A test ran longer than --lab-timeout. A BaseException, like KeyboardInterrupt, so
    that the sandbox's guards around student code (``except Exception``) let it through."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sandbox-lab", "sandbox lab grading")
    group.addoption("--lab-dir", default=None, metavar="DIR",
                    help="the student's lab folder (default: the folder above the tests)")
    group.addoption("--lab-results", default=None, metavar="FILE",
                    help="write each test's outcome and points to FILE (JSON)")
    group.addoption("--lab-timeout", type=float, default=None, metavar="SECONDS",
                    help="fail a test that runs longer than this (wall clock)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "points(n, hint=''): the test is worth n points in a lab's score; "
                                       "hint is shown to a student whose work fails it")
    if config.getoption("--lab-results", None):
        config.pluginmanager.register(ResultsRecorder(Path(config.getoption("--lab-results"))),
                                      "sandbox-lab-results")


def points_of(item: pytest.Item) -> tuple[float, str]:
    mark = item.get_closest_marker("points")
    if mark is None:
        return 0.0, ""
    n = mark.args[0] if mark.args else mark.kwargs.get("n", 1)
    return float(n), str(mark.kwargs.get("hint", ""))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        n, _ = points_of(item)
        if item.get_closest_marker("points") is not None:
            item.user_properties.append(("points", n))     # shows up in the JUnit XML


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    limit = item.config.getoption("--lab-timeout", None)
    if not limit or threading.current_thread() is not threading.main_thread():
        return (yield)

    def expired(signum: int, frame: Any) -> None:
        raise LabTimeout(f"the test took longer than {limit:g} s: does something loop forever?")
    previous = signal.signal(signal.SIGALRM, expired)
    # Repeats: an exception raised while the engine is inside a callback can be lost,
    # so the alarm keeps ringing until one lands in ordinary Python code.
    signal.setitimer(signal.ITIMER_REAL, limit, 0.25)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def short_message(report: pytest.TestReport) -> str:
    """The one line a student needs: the assertion or error message."""
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        text = crash.message
    else:
        text = str(report.longrepr or "")
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return report.outcome
    first = lines[0]
    for noise in ("Failed: ", "AssertionError: "):
        if first.startswith(noise):
            first = first[len(noise):]
    return first if len(first) < 400 else first[:397] + "..."


class ResultsRecorder:
    """Writes --lab-results: rewritten after collection and after every test, so a
    grading run that is killed still says which tests were never finished."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tests: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            n, hint = points_of(item)
            doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
            self.tests[item.nodeid] = {"name": item.name, "nodeid": item.nodeid, "points": n, "hint": hint,
                                       "description": doc.splitlines()[0] if doc else "",
                                       "outcome": "not run", "message": "", "duration": 0.0}
        self.write()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(f"{report.nodeid}: {short_message(report)}")   # type: ignore[arg-type]

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.tests.get(report.nodeid)
        if entry is None:
            return
        entry["duration"] = round(entry["duration"] + report.duration, 3)
        if report.failed and entry["outcome"] != "failed":          # setup, call or teardown
            entry["outcome"], entry["message"] = "failed", short_message(report)
        elif report.skipped and entry["outcome"] == "not run":
            entry["outcome"], entry["message"] = "skipped", short_message(report)
        elif report.when == "call" and report.passed and entry["outcome"] == "not run":
            entry["outcome"] = "passed"
        if report.when == "teardown":
            self.write()

    def pytest_sessionfinish(self) -> None:
        self.write()

    def write(self) -> None:
        data = {"tests": list(self.tests.values()), "errors": self.errors}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.path)
