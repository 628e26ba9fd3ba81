"""The labs shipped in lessons/labs/: one folder NN_slug each.

    lab.toml     title, summary, timeout (seconds per test), requires (see lessons.engine.format)
    README.md    the student's task
    starter/     what ``sandbox lab start`` copies for the student
    tests/       the public tests (pytest, with @pytest.mark.points)
    solution/    the reference solution (instructor side: it must score full marks)
"""
from __future__ import annotations

import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lessons import LABS_DIR
from lessons.engine.requirements import missing_features
from sandbox.errors import SandboxError

LAB_PARTS = ("README.md", "starter", "tests", "solution")
DEFAULT_TIMEOUT_S = 20.0


class LabError(SandboxError):
    """A lab that does not exist, or a folder that cannot be used for one."""


@dataclass(frozen=True)
class Lab:
    number: int
    folder: Path
    title: str
    summary: str
    timeout_s: float
    missing: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return self.folder.name

    @property
    def starter(self) -> Path:
        return self.folder / "starter"

    @property
    def tests(self) -> Path:
        return self.folder / "tests"

    @property
    def solution(self) -> Path:
        return self.folder / "solution"

    @property
    def available(self) -> bool:
        return not self.missing


def load_lab(folder: Path) -> Lab:
    for part in LAB_PARTS:
        if not (folder / part).exists():
            raise LabError(f"{folder}: a lab needs {part}")
    try:
        meta = tomllib.loads((folder / "lab.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise LabError(f"{folder / 'lab.toml'}: {e}") from None
    return Lab(int(folder.name.split("_", 1)[0]), folder, str(meta.get("title", folder.name)),
               str(meta.get("summary", "")), float(meta.get("timeout", DEFAULT_TIMEOUT_S)),
               missing_features(meta.get("requires", ())))


def list_labs(root: Path = LABS_DIR) -> list[Lab]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name[:2].isdigit())
    return [load_lab(f) for f in folders]


def find_lab(key: str | int, root: Path = LABS_DIR) -> Lab:
    """A lab by number (``1``), folder (``01_boot_sector``) or slug (``boot_sector``)."""
    text = str(key)
    labs = list_labs(root)
    for lab in labs:
        if text.isdigit() and int(text) == lab.number or text in (lab.id, lab.id.split("_", 1)[-1]):
            return lab
    known = ", ".join(f"{lab.number} ({lab.id})" for lab in labs)
    raise LabError(f"no lab '{key}' (labs: {known})")


def start_lab(lab: Lab, dest: Path) -> list[Path]:
    """Copy the README, the starter files and the public tests into ``dest``."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise LabError(f"{dest} already exists and is not empty: choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    copied = [Path(shutil.copy2(lab.folder / "README.md", dest / "README.md"))]
    for item in sorted(lab.starter.iterdir()):
        target = dest / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
        copied.append(target)
    shutil.copytree(lab.tests, dest / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    copied.append(dest / "tests")
    return copied
