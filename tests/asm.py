"""Assemble small test programs with GNU as (AT&T syntax), for tests that need a guest
doing exactly one thing. Tests using it skip where the toolchain is missing."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

HAVE_AS = shutil.which("as") is not None and shutil.which("ld") is not None and shutil.which("objcopy") is not None
needs_as = pytest.mark.skipif(not HAVE_AS, reason="GNU as/ld/objcopy not installed")


def assemble(source: str, base: int = 0x7C00) -> bytes:
    """Assemble ``source`` to a flat binary loaded at ``base``."""
    with tempfile.TemporaryDirectory() as d:
        src, obj, elf, out = (Path(d) / n for n in ("t.S", "t.o", "t.elf", "t.bin"))
        src.write_text(source + "\n")
        subprocess.run(["as", "--32", "-o", obj, src], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-Ttext", hex(base), "--build-id=none", "-o", elf, obj],
                       check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", elf, out], check=True, capture_output=True)
        return out.read_bytes()


def boot_sector(source: str) -> bytes:
    """A bootable 512-byte sector: code at 0x7C00, padded, with the 0x55AA signature."""
    code = assemble(".code16\n" + source, 0x7C00)
    if len(code) > 510:
        raise ValueError(f"boot sector code is {len(code)} bytes (max 510)")
    return code + bytes(510 - len(code)) + b"\x55\xaa"


def disk_image(path: Path, source: str, extra: bytes = b"") -> Path:
    path.write_bytes(boot_sector(source) + extra)
    return path
