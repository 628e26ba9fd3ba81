"""Fixtures lab tests use to reach the student's files and run machines.

Anything wrong with the student's work (a missing file, a syntax error, a boot
sector that does not assemble, an image that does not boot) fails the test that
needed it with one clear line (``pytest.fail(..., pytrace=False)``): a zero for
that test, never a crash of the grading run.
"""
from __future__ import annotations

import importlib.util
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import pytest

from lessons.labkit.bootsector import assemble_boot_sector
from sandbox.api import Machine
from sandbox.config.load import load_machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.errors import SandboxError
from sandbox.events import EventRecorder

WALL_LIMIT_S = 20.0          # no single machine run in a test takes longer than this


@dataclass
class Run:
    """What happened when a lab test booted a machine."""
    machine: Machine
    events: EventRecorder
    outcome: str                        # "stopped", "time", "idle" or "timeout" (Machine.run)
    report: dict[str, Any] = field(default_factory=dict)

    def vm(self, name: str | None = None):
        return self.machine.vm(name)

    def console(self, name: str | None = None) -> str:
        return self.vm(name).console.decode("latin-1")

    def lines(self, name: str | None = None) -> list[str]:
        return [ln.rstrip("\r") for ln in self.console(name).split("\n")]

    def state(self, name: str | None = None) -> str:
        return self.vm(name).state.value

    def exit_reason(self, name: str | None = None) -> str:
        return self.vm(name).exit_reason or ""


@pytest.fixture
def lab_dir(request: pytest.FixtureRequest) -> Path:
    """The student's lab folder: --lab-dir, or the folder above the tests."""
    given = request.config.getoption("--lab-dir", None)
    return Path(given).resolve() if given else Path(request.path).resolve().parent.parent


@pytest.fixture
def lab_file(lab_dir: Path) -> Callable[[str], Path]:
    def find(name: str) -> Path:
        path = lab_dir / name
        if not path.is_file():
            pytest.fail(f"{name} is missing from {lab_dir} (sandbox lab start copies the starter files)",
                        pytrace=False)
        return path
    return find


def _student_line(error: BaseException, path: Path) -> str:
    frames = [f for f in traceback.extract_tb(error.__traceback__) if Path(f.filename) == path]
    return f" (line {frames[-1].lineno})" if frames else ""


@pytest.fixture
def student_module(lab_dir: Path, lab_file: Callable[[str], Path]):
    """Import a student's Python file as a module named after it; the lab folder is
    on sys.path meanwhile, so "policy:MyPolicy" names it for the sandbox too."""
    loaded: list[str] = []
    sys.path.insert(0, str(lab_dir))

    def load(filename: str) -> ModuleType:
        path = lab_file(filename)
        name = path.stem
        sys.modules.pop(name, None)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        loaded.append(name)
        try:
            spec.loader.exec_module(module)
        except SyntaxError as e:
            pytest.fail(f"{filename} line {e.lineno}: {e.msg}", pytrace=False)
        except Exception as e:    # noqa: BLE001  (whatever the student's code raises)
            pytest.fail(f"{filename} fails to import{_student_line(e, path)}: {type(e).__name__}: {e}",
                        pytrace=False)
        return module

    yield load
    for name in loaded:
        sys.modules.pop(name, None)
    if str(lab_dir) in sys.path:
        sys.path.remove(str(lab_dir))


@pytest.fixture
def boot_sector(lab_file: Callable[[str], Path]) -> Callable[[str], bytes]:
    """Assemble a student's .S file into a 512-byte boot sector (or fail clearly)."""
    def build(name: str) -> bytes:
        try:
            return assemble_boot_sector(lab_file(name))
        except SandboxError as e:
            pytest.fail(str(e), pytrace=False)
    return build


@pytest.fixture
def make_machine():
    """Build a Machine from a MachineConfig or a machine.toml, in deterministic mode;
    closed after the test."""
    machines: list[Machine] = []

    def make(config: MachineConfig | str | Path) -> Machine:
        try:
            cfg = config if isinstance(config, MachineConfig) else load_machine(config)
            cfg.host.deterministic = True
            machine = Machine(cfg)
        except SandboxError as e:
            pytest.fail(str(e), pytrace=False)
        machines.append(machine)
        return machine

    yield make
    for m in machines:
        m.close()


@pytest.fixture
def boot(tmp_path: Path, make_machine):
    """Power a machine on, run it for ``run_ms`` of guest time (or until every VM
    stops) and return a ``Run``. Give ``image`` (bytes or a path) for a one-VM
    machine, or ``config`` for any machine."""
    def run(image: bytes | Path | None = None, *, config: MachineConfig | str | Path | None = None,
            memory_mib: int = 16, input: str = "", run_ms: float = 200,
            kinds: Iterable[str] | None = None, name: str = "student") -> Run:
        if config is None:
            if isinstance(image, (bytes, bytearray)):
                path = tmp_path / f"{name}.img"
                path.write_bytes(bytes(image))
                image = path
            vm = VmConfig(name=name, memory_mib=memory_mib, disk=Path(image) if image else None,
                          input=input.encode())
            config = MachineConfig(HostConfig(deterministic=True), [vm])
        machine = make_machine(config)
        recorder = EventRecorder(machine.events, kinds)
        try:
            machine.power_on()
            outcome = machine.run(until_ns=int(run_ms * 1_000_000), wall_timeout_s=WALL_LIMIT_S)
        except SandboxError as e:
            pytest.fail(str(e), pytrace=False)
        return Run(machine, recorder, outcome, machine.report())
    return run
