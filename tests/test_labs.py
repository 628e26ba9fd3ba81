"""Labs: every starter fails and every reference solution scores full marks (the
authoring check); the grader's JSON, results.json and JUnit outputs parse; a broken
student file or an endless loop costs points, never the grading run."""
from __future__ import annotations

import json
import shutil
import tomllib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lessons import LABS_DIR, LESSONS_DIR
from lessons.labkit.grade import grade, gradescope, junit_xml
from lessons.labkit.labs import LabError, find_lab, list_labs, load_lab, start_lab
from sandbox.cli.main import main

LABS = list_labs()
AVAILABLE = [lab for lab in LABS if lab.available]


def test_every_lab_folder_has_readme_starter_tests_and_solution():
    assert [lab.number for lab in LABS] == list(range(1, len(LABS) + 1))
    assert {1} <= {lab.number for lab in AVAILABLE}
    for lab in LABS:
        assert (lab.folder / "README.md").read_text().startswith("# Lab ")
        assert list(lab.tests.glob("test_*.py"))


@pytest.mark.parametrize("lab", AVAILABLE, ids=lambda lab: lab.id)
def test_starter_fails_and_solution_scores_full_marks(lab):
    with ThreadPoolExecutor(2) as pool:        # two pytest subprocesses side by side
        starter, solution = pool.map(lambda work: grade(lab, work), (lab.starter, lab.solution))
    assert not starter.full_marks and starter.score < starter.max_score
    assert not starter.errors, starter.errors
    assert solution.full_marks, [(t.name, t.message) for t in solution.tests if not t.passed]
    assert solution.score == solution.max_score > 0


@pytest.fixture
def boot_lab_copy(tmp_path):
    lab = find_lab(1)
    work = tmp_path / "work"
    start_lab(lab, work)
    for f in lab.solution.iterdir():
        shutil.copy(f, work / f.name)
    return lab, work


def test_grade_writes_json_results_json_and_junit(boot_lab_copy, tmp_path, capsys):
    lab, work = boot_lab_copy
    out = tmp_path / "reports"
    assert main(["lab", "grade", "1", str(work), "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["score"] == printed["max_score"] == 8 and printed["passed"]
    results = json.loads((out / "results.json").read_text())
    assert results["score"] == 8 and len(results["tests"]) == 5
    assert {t["status"] for t in results["tests"]} == {"passed"}
    assert all({"name", "score", "max_score", "output"} <= t.keys() for t in results["tests"])
    suite = ET.parse(out / "junit.xml").getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "5" and suite.get("failures") == "0"


def test_a_broken_student_file_gets_a_clear_message_and_zeros_only_where_it_matters(boot_lab_copy):
    lab, work = boot_lab_copy
    source = (work / "boot.S").read_text().replace("lodsb", "lodsbx", 1)
    (work / "boot.S").write_text(source)
    result = grade(lab, work)
    by_name = {t.name: t for t in result.tests}
    assert by_name["test_name_filled_in"].passed            # not affected
    broken = by_name["test_boot_sector_assembles"]
    assert broken.points == 0 and "boot.S does not assemble" in broken.message and "lodsbx" in broken.message
    assert result.score == 1 and not result.errors
    # the same outcome in the reports a CI reads
    assert gradescope(result)["tests"][0]["status"] == "failed"
    assert ET.fromstring(junit_xml(result).split("?>", 1)[-1]).get("failures") == "4"


def test_a_missing_student_file_is_named(boot_lab_copy):
    lab, work = boot_lab_copy
    (work / "name.txt").unlink()
    result = grade(lab, work)
    failed = [t for t in result.tests if not t.passed]
    assert [t.name for t in failed] == ["test_name_filled_in", "test_prints_name_on_com1"]
    assert "name.txt is missing" in failed[0].message


def test_an_endless_loop_in_a_test_costs_its_points_not_the_grading(tmp_path):
    """The per-test wall-clock limit (lab.toml timeout) stops a loop in Python code."""
    lab_dir = tmp_path / "09_loop"
    for part in ("starter", "solution", "tests"):
        (lab_dir / part).mkdir(parents=True)
    (lab_dir / "README.md").write_text("# Lab 9\n")
    (lab_dir / "lab.toml").write_text('title = "loop"\ntimeout = 1\n')
    (lab_dir / "solution" / "work.py").write_text("def answer():\n    while True:\n        pass\n")
    (lab_dir / "tests" / "test_loop.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.points(2, hint='do not loop')\n"
        "def test_answer(student_module):\n    student_module('work.py').answer()\n\n"
        "@pytest.mark.points(1)\n"
        "def test_fine():\n    pass\n")
    result = grade(load_lab(lab_dir), lab_dir / "solution")
    by_name = {t.name: t for t in result.tests}
    assert "longer than 1 s" in by_name["test_answer"].message and by_name["test_answer"].hint == "do not loop"
    assert by_name["test_fine"].passed and result.score == 1 and result.max_score == 3


def test_a_looping_student_policy_cannot_hang_grading(tmp_path):
    """Lab 2 with a 1-second limit per test (its lab.toml says 10) and a pick() that never returns."""
    shutil.copytree(find_lab(2).folder, tmp_path / "02_lab", ignore=shutil.ignore_patterns("__pycache__"))
    toml = tmp_path / "02_lab" / "lab.toml"
    toml.write_text(toml.read_text().replace("timeout = 10", "timeout = 1"))
    lab = load_lab(tmp_path / "02_lab")
    assert lab.timeout_s == 1
    work = tmp_path / "work"
    start_lab(lab, work)
    source = (work / "policy.py").read_text()
    (work / "policy.py").write_text(source.replace("return runnable[0]", "while True:\n            pass"))
    result = grade(lab, work)
    looping = [t for t in result.tests if "longer than" in t.message]
    assert len(looping) == 3 and all(t.points == 0 for t in looping)
    assert result.score == 1 and not result.errors


def test_a_policy_that_raises_is_named_with_its_line(tmp_path):
    lab = find_lab(2)
    work = tmp_path / "work"
    start_lab(lab, work)
    source = (work / "policy.py").read_text()
    (work / "policy.py").write_text(source.replace("return runnable[0]", "return runnable[0].missing"))
    result = grade(lab, work)
    failed = {t.name: t.message for t in result.tests if not t.passed}
    assert "failed in pick(): AttributeError" in failed["test_equal_shares_split_evenly"]
    assert "policy.py line" in failed["test_equal_shares_split_evenly"]


def test_start_copies_readme_starter_and_tests_and_refuses_a_used_folder(tmp_path):
    lab = find_lab("boot_sector")
    work = tmp_path / "mine"
    start_lab(lab, work)
    assert sorted(p.name for p in work.iterdir()) == ["README.md", "boot.S", "name.txt", "tests"]
    assert (work / "tests" / "test_boot_sector.py").is_file()
    with pytest.raises(LabError, match="not empty"):
        start_lab(lab, work)


def test_cli_check_prints_score_and_hints_and_fails_the_starter(tmp_path, capsys):
    work = tmp_path / "mine"
    assert main(["lab", "start", "1", str(work)]) == 0
    assert main(["lab", "check", "1", str(work)]) == 1
    out = capsys.readouterr().out
    assert "score: 1/8" in out and "hint: Write your name in name.txt." in out
    assert "FAIL  0/2  test_powers_off_through_acpi: still running after 100 ms" in out
    assert main(["lab", "list"]) == 0
    assert " 1  Write a boot sector" in capsys.readouterr().out
    assert main(["lab", "check", "7", str(work)]) == 2


def test_plugin_is_registered_as_a_pytest11_entry_point():
    pyproject = tomllib.loads((LESSONS_DIR.parent / "pyproject.toml").read_text())
    assert pyproject["project"]["entry-points"]["pytest11"]["sandbox_lab"] == "lessons.labkit.plugin"


def test_labs_dir_is_inside_the_lessons_package():
    assert LABS_DIR.parent == LESSONS_DIR and Path(LABS_DIR / "01_boot_sector" / "lab.toml").is_file()
