"""Lessons: the index and format, every lesson played headless end to end, the
terminal player, progress kept in the workspace, and one-line format errors."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from lessons import LESSONS_DIR
from lessons.engine.format import LessonFormatError, find_lesson, load_index, load_lesson
from lessons.engine.player import LessonPlayer
from lessons.engine.progress import Progress
from lessons.engine.terminal import TerminalPlayer
from sandbox.cli.main import main
from sandbox.errors import SandboxError

ENTRIES = load_index()
AVAILABLE = [e for e in ENTRIES if e.available]
HELLO = (LESSONS_DIR.parent / "guests" / "images" / "hello.img").resolve()


def expected_choice(step):
    return step.predict.expect


# --- the index -------------------------------------------------------------------------------
def test_index_lists_every_lesson_folder_in_order():
    folders = sorted(p.name for p in LESSONS_DIR.iterdir() if (p / "lesson.toml").is_file())
    assert [e.id for e in ENTRIES] == folders
    assert [e.number for e in ENTRIES] == list(range(1, len(ENTRIES) + 1))
    assert {1, 2, 3, 4, 7} <= {e.number for e in AVAILABLE}


def test_lessons_are_found_by_number_folder_or_slug():
    assert find_lesson(2).id == find_lesson("02_vm_exit").id == find_lesson("vm_exit").id
    with pytest.raises(LessonFormatError, match="no lesson '99'"):
        find_lesson(99)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.id)
def test_every_lesson_parses_and_runs_deterministic(entry):
    lesson = load_lesson(entry.folder)
    assert lesson.steps and lesson.title
    assert "deterministic = false" not in lesson.machine.read_text()


# --- every lesson plays headless -------------------------------------------------------------
@pytest.mark.parametrize("entry", AVAILABLE, ids=lambda e: e.id)
def test_lesson_plays_end_to_end(entry):
    """Each step's event arrives; each prediction resolves to a choice, the one the
    lesson's authors expect (so the text stays true to the machine)."""
    with LessonPlayer(load_lesson(entry.folder)) as player:
        results = player.play_all(expected_choice)
    for r in results:
        assert r.completed, f"step {r.number} ({r.step.title}): {r.error or 'its event did not arrive'}"
        if r.prediction is not None:
            assert r.prediction.answer is not None, f"step {r.number}: measured {r.prediction.value!r}"
            if r.step.predict.expect is not None:
                assert r.prediction.correct, f"step {r.number}: measured {r.prediction.value!r}"


def test_a_lesson_plays_the_same_twice():
    def transcript():
        with LessonPlayer(load_lesson(find_lesson(7).folder)) as player:
            return [(r.match, sorted(r.console.items()), r.prediction and r.prediction.value)
                    for r in player.play_all()]
    assert transcript() == transcript()


def test_events_are_consumed_in_order_so_steps_can_explain_a_burst():
    """Power-on publishes its whole workflow at once; lesson 4 explains one event per step."""
    with LessonPlayer(load_lesson(find_lesson(4).folder)) as player:
        results = player.play_all()
    kinds = [r.match.split()[1] for r in results[:8]]
    assert kinds == ["vm.created", "power.allocate_vcpus", "power.allocate_ram", "power.open_disk",
                     "power.firmware_boot_read", "power.guest_start", "power.network_attached",
                     "power.running"]


def test_single_step_action_lists_instructions():
    with LessonPlayer(load_lesson(find_lesson(2).folder)) as player:
        player.play_step()
        result = player.play_step()
    assert len(result.notes) == 6
    assert result.notes[0].startswith("hello/vcpu0  0000:7c00  cli")


# --- a step that fails, a bad action -----------------------------------------------------------
def write_lesson(folder: Path, steps: str, machine: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "machine.toml").write_text(machine or f'[[vm]]\nname = "hello"\ndisk = "{HELLO}"\nreadonly = true\n')
    (folder / "lesson.toml").write_text(f'title = "t"\nmachine = "machine.toml"\n{steps}')
    return folder


def test_a_step_whose_event_never_comes_gives_the_hint(tmp_path):
    folder = write_lesson(tmp_path / "01_x", '''
[[step]]
text = "boot"
action = { do = "power_on" }
until = { console = "never printed", vm = "hello" }
limit_ms = 5
hint = "look elsewhere"
''')
    with LessonPlayer(load_lesson(folder)) as player:
        result = player.play_step()
    assert not result.completed and result.hint == "look elsewhere"
    assert "Hello from the guest!" in result.console["hello"]


def test_an_action_on_an_unknown_vm_is_a_step_problem_not_a_crash(tmp_path):
    folder = write_lesson(tmp_path / "01_x", '''
[[step]]
text = "feed"
action = { do = "feed", vm = "nobody", text = "x" }
''')
    with LessonPlayer(load_lesson(folder)) as player:
        result = player.play_step()
    assert not result.completed and "nobody" in result.error


@pytest.mark.parametrize("step, message", [
    ('[[step]]\ntext = "x"\nhnit = "y"', "unknown key 'hnit' (did you mean 'hint'?)"),
    ('[[step]]\ntext = "x"\naction = { do = "power-on" }', "unknown action 'power-on' (did you mean 'power_on'?)"),
    ('[[step]]\ntext = "x"\nuntil = { event = "exit.iox" }', "unknown event kind 'exit.iox'"),
    ('[[step]]\ntext = "x"\nhighlight = ["layer:cpu"]', "highlight 'layer:cpu' needs kind:what"),
    ('[[step]]\ntext = "x"\naction = { do = "step" }', "missing 'count'"),
    ('[[step]]\ntext = "x"\n[step.predict]\nquestion = "q"\nmeasure = "count"\nkind = "exit.io"\n'
     'choices = ["1", "2"]\nexpect = "3"', "expect '3' is not one of the choices"),
    ('[[step]]\ntext = "x"\n[step.predict]\nquestion = "q"\nmeasure = "vm_state"\nchoices = ["a", "b"]',
     "missing 'vm'"),
])
def test_format_errors_name_the_file_the_step_and_the_key(tmp_path, step, message):
    folder = write_lesson(tmp_path / "01_x", step)
    with pytest.raises(LessonFormatError) as err:
        load_lesson(folder)
    assert message in str(err.value)
    assert "lesson.toml step 1" in str(err.value) and "\n" not in str(err.value)


def test_an_index_of_another_format_version_is_refused(tmp_path):
    (tmp_path / "index.toml").write_text("format = 2\nlessons = []\n")
    with pytest.raises(LessonFormatError, match="format 2 is not supported"):
        load_index(tmp_path)


# --- the terminal player and progress ---------------------------------------------------------
def scripted(*answers: str):
    it = iter(answers)
    return lambda prompt: next(it)


def test_terminal_player_shows_text_events_console_and_verdicts(tmp_path):
    out = io.StringIO()
    lesson = load_lesson(find_lesson(1).folder)
    failures = TerminalPlayer(lesson, Progress(tmp_path), out, scripted("", "1", "", "2", "1")).play()
    text = out.getvalue()
    assert failures == 0
    assert "Step 2/5: The hardware layer: RAM frames" in text
    assert "Prediction: you said less than 1 MiB; the machine says: less than 1 MiB" in text
    assert "you said serial.tx; the machine says: exit.bios (measured: exit.bios): not this time." in text
    assert "[hello COM1] Hello from the guest!" in text
    assert "(The guest wrote a byte to its serial port (COM1).)" in text
    saved = json.loads((tmp_path / "lesson-progress.json").read_text())
    entry = saved["lessons"]["01_three_layers"]
    assert entry["completed"] and entry["predictions"]["4"]["correct"] is False


def test_quitting_saves_the_step_and_play_resumes_there(tmp_path):
    lesson = load_lesson(find_lesson(3).folder)
    progress = Progress(tmp_path)
    TerminalPlayer(lesson, progress, io.StringIO(), scripted("", "", "", "q")).play()
    assert Progress(tmp_path).next_step(lesson.id) == 3
    out = io.StringIO()
    TerminalPlayer(lesson, Progress(tmp_path), out, None).play()
    text = out.getvalue()
    assert "resuming at step 4" in text and "Step 3/8" not in text
    assert "Done: tinyos printed 'tinyos> '" in text          # the replayed machine is where it was
    assert Progress(tmp_path).lesson(lesson.id)["completed"]


def test_a_corrupt_progress_file_is_a_one_line_error(tmp_path):
    (tmp_path / "lesson-progress.json").write_text("{not json")
    with pytest.raises(SandboxError, match="delete the file to start over"):
        Progress(tmp_path)


def test_cli_lists_lessons_and_plays_one(tmp_path, capsys):
    assert main(["lesson", "list", "--workspace", str(tmp_path)]) == 0
    listing = capsys.readouterr().out
    assert " 1  The three layers" in listing
    assert main(["lesson", "play", "1", "--auto", "--workspace", str(tmp_path)]) == 0
    assert "End of lesson 1." in capsys.readouterr().out
    assert main(["lesson", "list", "--workspace", str(tmp_path)]) == 0
    assert "done" in capsys.readouterr().out.splitlines()[0]
    assert main(["lesson", "play", "42", "--workspace", str(tmp_path)]) == 2
    assert "no lesson '42'" in capsys.readouterr().err


# --- lesson guests ----------------------------------------------------------------------------
@pytest.mark.parametrize("source", sorted(LESSONS_DIR.glob("*/*.S")), ids=lambda p: p.parent.name)
def test_lesson_guest_images_are_built_from_their_sources(source):
    from lessons.labkit.bootsector import assemble_boot_sector, have_toolchain
    if not have_toolchain():
        pytest.skip("gcc/ld not installed")
    assert source.with_suffix(".img").read_bytes() == assemble_boot_sector(source)


def test_the_lesson_engine_and_labkit_never_import_qt():
    """Only gui/lesson_panel.py knows Qt; the terminal player and the grader run anywhere."""
    import ast
    offenders = {}
    for path in LESSONS_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        if names & {"PySide6", "pyqtgraph", "gui"}:
            offenders[str(path)] = names & {"PySide6", "pyqtgraph", "gui"}
    assert offenders == {}
