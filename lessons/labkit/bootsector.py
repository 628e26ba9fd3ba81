"""Assemble a boot sector from one GNU as source file, with the student's own error
messages (file:line: message) when it does not assemble.

The recipe is the shipped guests' (``sandbox/guestbuild.py``): the C preprocessor
then ``as --32``, linked at 0x7C00 with ``guests/src/lib/bootsector.ld`` into one
flat 512-byte sector ending in the 0x55AA signature.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from sandbox.errors import SandboxError
from sandbox.guestbuild import SRC_DIR

SECTOR = 512
LINKER_SCRIPT = SRC_DIR / "lib" / "bootsector.ld"
MAX_MESSAGES = 6


class BootSectorError(SandboxError):
    """A boot sector source that does not assemble, or not into a bootable sector."""


def have_toolchain() -> bool:
    return all(shutil.which(t) for t in ("gcc", "ld"))


def _run(cmd: list[str], what: Path, cwd: Path) -> None:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
    if done.returncode == 0:
        return
    lines = [ln for ln in (done.stderr or done.stdout).splitlines()
             if ln.strip() and not ln.endswith("Assembler messages:")]
    shown = "; ".join(lines[:MAX_MESSAGES]) or f"{cmd[0]} failed with no message"
    raise BootSectorError(f"{what.name} does not assemble: {shown}")


def assemble_boot_sector(source: Path | str) -> bytes:
    """The 512 bytes the BIOS will load from ``source`` (a .S file, AT&T syntax)."""
    source = Path(source)
    if not source.is_file():
        raise BootSectorError(f"{source}: file not found")
    if not have_toolchain():
        raise BootSectorError("gcc and GNU ld are needed to assemble a boot sector")
    with tempfile.TemporaryDirectory() as scratch:
        obj, out = Path(scratch) / "boot.o", Path(scratch) / "boot.bin"
        _run(["gcc", "-m32", "-c", "-x", "assembler-with-cpp", source.name, "-o", str(obj)],
             source, source.parent)
        _run(["ld", "-m", "elf_i386", "--build-id=none", "-nostdlib", "-T", str(LINKER_SCRIPT),
              "-o", str(out), str(obj)], source, source.parent)
        image = out.read_bytes()
    if len(image) != SECTOR:
        raise BootSectorError(f"{source.name} assembles to {len(image)} bytes, not one 512-byte sector "
                              "(pad with .org 510 before the signature)")
    if image[510:] != b"\x55\xaa":
        raise BootSectorError(f"{source.name} does not end with the boot signature 0x55 0xAA "
                              "(.word 0xAA55 at offset 510)")
    return image
