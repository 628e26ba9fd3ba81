"""Grade a student's lab folder: run the lab's tests in a separate pytest process
and turn the outcome into a score, Gradescope's results.json and JUnit XML.

The tests run in a subprocess so that nothing a student writes (an endless loop, a
crash of the engine, a ``sys.exit``) can take the grader down: each test has a
wall-clock limit (``--lab-timeout``) and the whole run another one; a test that
never reported counts as failed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lessons import LESSONS_DIR
from lessons.labkit.labs import Lab, LabError

REPO_ROOT = LESSONS_DIR.parent


@dataclass
class TestOutcome:
    name: str
    description: str
    points: float            # earned
    max_points: float
    outcome: str             # passed, failed, skipped, not run
    message: str = ""
    hint: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


@dataclass
class GradeResult:
    lab: str
    tests: list[TestOutcome] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_points for t in self.tests)

    @property
    def full_marks(self) -> bool:
        return bool(self.tests) and not self.errors and all(t.passed for t in self.tests)

    def summary(self) -> str:
        return f"score: {fmt(self.score)}/{fmt(self.max_score)}"

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "score": self.score, "max_score": self.max_score,
                "passed": self.full_marks, "errors": self.errors,
                "tests": [asdict(t) for t in self.tests]}


def fmt(x: float) -> str:
    return f"{x:g}"


def grade(lab: Lab, work: Path) -> GradeResult:
    """Run ``lab``'s tests against the student's folder ``work``."""
    work = Path(work).resolve()
    if not work.is_dir():
        raise LabError(f"{work}: no such folder (sandbox lab start {lab.number} {work} creates it)")
    with tempfile.TemporaryDirectory(prefix="sandbox-lab-") as scratch:
        raw = Path(scratch) / "results.json"
        cmd = [sys.executable, "-m", "pytest", str(lab.tests), "-p", "lessons.labkit.plugin",
               "--lab-dir", str(work), "--lab-results", str(raw), "--lab-timeout", f"{lab.timeout_s:g}",
               "-q", "--no-header", "-p", "no:cacheprovider", "--rootdir", str(lab.tests), "-c", os.devnull]
        env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
        limit = lab.timeout_s * 10 + 30
        errors: list[str] = []
        try:
            done = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=limit)
            if done.returncode not in (0, 1):          # 1: some tests failed; else pytest itself failed
                tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
                errors.append(f"pytest exited with status {done.returncode}: {' '.join(tail)}")
        except subprocess.TimeoutExpired:
            errors.append(f"grading stopped after {limit:g} s; unfinished tests count as failed")
        data = json.loads(raw.read_text()) if raw.exists() else {"tests": [], "errors": []}
    result = GradeResult(lab.id, errors=errors + data.get("errors", []))
    for t in data["tests"]:
        passed = t["outcome"] == "passed"
        message = t["message"] or ("did not finish" if t["outcome"] == "not run" else "")
        result.tests.append(TestOutcome(t["name"], t["description"], t["points"] if passed else 0.0,
                                        t["points"], t["outcome"], message, "" if passed else t["hint"]))
    if not result.tests and not result.errors:
        result.errors.append("no tests ran")
    return result


# --- output formats -------------------------------------------------------------------------
def text_report(result: GradeResult) -> str:
    lines = []
    for t in result.tests:
        mark = "PASS" if t.passed else "FAIL"
        lines.append(f"  {mark}  {fmt(t.points)}/{fmt(t.max_points)}  {t.name}"
                     + (f": {t.message}" if t.message and not t.passed else ""))
        if t.hint:
            lines.append(f"        hint: {t.hint}")
    lines += [f"  error: {e}" for e in result.errors]
    lines.append(result.summary())
    return "\n".join(lines)


def gradescope(result: GradeResult) -> dict[str, Any]:
    """Gradescope's autograder results.json schema (score, output, tests[])."""
    return {
        "score": result.score,
        "max_score": result.max_score,
        "output": result.summary() + "".join(f"\nerror: {e}" for e in result.errors),
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{
            "name": t.description or t.name,
            "number": str(i),
            "score": t.points,
            "max_score": t.max_points,
            "status": "passed" if t.passed else "failed",
            "output": "\n".join(filter(None, [t.message, t.hint and f"hint: {t.hint}"])),
            "visibility": "visible",
        } for i, t in enumerate(result.tests, start=1)],
    }


def junit_xml(result: GradeResult) -> str:
    """JUnit XML (one testsuite; points as properties) that any CI can display."""
    failures = sum(1 for t in result.tests if not t.passed)
    suite = ET.Element("testsuite", name=result.lab, tests=str(len(result.tests)),
                       failures=str(failures), errors=str(len(result.errors)))
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="score", value=fmt(result.score))
    ET.SubElement(props, "property", name="max_score", value=fmt(result.max_score))
    for t in result.tests:
        case = ET.SubElement(suite, "testcase", classname=result.lab, name=t.name)
        cprops = ET.SubElement(case, "properties")
        ET.SubElement(cprops, "property", name="points", value=fmt(t.max_points))
        if not t.passed:
            tag = "skipped" if t.outcome == "skipped" else "failure"
            node = ET.SubElement(case, tag, message=t.message)
            node.text = t.hint
    for e in result.errors:
        case = ET.SubElement(suite, "testcase", classname=result.lab, name="grading")
        ET.SubElement(case, "error", message=e)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def write_outputs(result: GradeResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.json"
    junit = out_dir / "junit.xml"
    results.write_text(json.dumps(gradescope(result), indent=2) + "\n")
    junit.write_text(junit_xml(result) + "\n")
    return results, junit
