"""The embedded default scenario: a small host running some of the shipped guests.

The guests write to their disks, so each VM boots a private copy of its image in a
temporary folder (removed by ``Scenario.close``). Images that are not built yet are
left out with a note; if none is there, the user is told how to build them.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.errors import SandboxError

IMAGES = Path(__file__).resolve().parent.parent / "guests" / "images"


class ScenarioError(SandboxError):
    """The default scenario cannot be built (no shipped guest image found)."""


@dataclass(frozen=True)
class GuestSpec:
    name: str            # the VM's name
    image: str           # file in guests/images
    command_line: str    # loader command line ("" keeps the image's own)
    role: str            # what it shows, one line


# The default scenario, one row per VM (order = column order in the diagram).
DEFAULT_GUESTS: tuple[GuestSpec, ...] = (
    GuestSpec("tinyos", "tinyos.img", "", "an interactive OS: type shell commands into its console"),
    GuestSpec("cpuhog", "cpuhog.img", "burn=300000 sleep=0 reports=0",
              "a compute-bound guest that never idles: competes for the physical CPUs"),
    GuestSpec("hello", "hello.img", "", "the whole boot path in one sector, then ACPI power-off"),
)
HOST = HostConfig(cpus=2, deterministic=True, quantum_ms=1.0)


@dataclass
class Scenario:
    config: MachineConfig
    notes: list[str] = field(default_factory=list)     # e.g. images that were left out
    _tmp: tempfile.TemporaryDirectory | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def default_scenario(images: Path = IMAGES, guests: tuple[GuestSpec, ...] = DEFAULT_GUESTS,
                     host: HostConfig = HOST) -> Scenario:
    from sandbox.guestbuild import write_command_line   # noqa: PLC0415 (only needed here)
    tmp = tempfile.TemporaryDirectory(prefix="sandbox-gui-")
    vms, notes = [], []
    for spec in guests:
        src = images / spec.image
        if not src.is_file():
            notes.append(f"{spec.name}: {src} not found (build it with `sandbox guests build`), left out")
            continue
        disk = Path(tmp.name) / spec.image
        shutil.copyfile(src, disk)
        if spec.command_line:
            write_command_line(disk, spec.command_line)
        vms.append(VmConfig(name=spec.name, disk=disk))
    if not vms:
        tmp.cleanup()
        raise ScenarioError(f"no shipped guest image in {images}: build them with `sandbox guests build`, "
                            "or open a machine.toml")
    config = MachineConfig(HostConfig(**vars(host)), vms, source="<default scenario>")
    return Scenario(config, notes, tmp)
