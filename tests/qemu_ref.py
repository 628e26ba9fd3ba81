"""QEMU as the reference PC: run a guest under qemu-system-i386 and check its serial output.

The expected runs live in guests/expected/<name>.txt, one file per run, so that the
sandbox's own hypervisor tests can replay exactly the same runs and compare against
exactly the same transcripts. File format (see guests/expected/README.md)::

    disk: tinyos.img                 # or  kernel: tinyos.elf  (Multiboot, like qemu -kernel)
    append: burn=1 reports=2         # optional: the Multiboot command line (kernel runs)
    cmdline: burn=1 reports=2        # optional: rewrite the disk's command-line sector
    wait-for: tinyos>                # optional: send the input once this text appeared
    input: help\\nls\\npoweroff\\n     # optional: bytes for COM1 (\\n and \\r escapes)
    exit: poweroff                   # how the run ends: poweroff or triple-fault
    ---
    the serial transcript, line by line; {*} matches any text within a line

Serial output is compared after turning \\r\\n into \\n and dropping trailing blanks.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "guests" / "images"
EXPECTED = REPO / "guests" / "expected"
QEMU = shutil.which("qemu-system-i386")
WILDCARD = "{*}"

# A minimal standard PC, as the brief defines it: 16 MiB, no display, COM1 on stdio.
QEMU_BASE = ["-m", "16", "-display", "none", "-no-reboot", "-nic", "none", "-serial", "stdio",
             "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]


def qemu_available() -> bool:
    return QEMU is not None


# ---- expected runs ----------------------------------------------------------

@dataclass(frozen=True)
class ExpectedRun:
    name: str
    disk: str | None            # image file name in guests/images
    kernel: str | None          # Multiboot ELF in guests/images
    append: str | None
    cmdline: str | None
    wait_for: str | None
    input: bytes
    exit: str                   # "poweroff" or "triple-fault"
    transcript: str


def _unescape(text: str) -> bytes:
    return text.replace("\\n", "\n").replace("\\r", "\r").encode("ascii")


def load_expected(name: str) -> ExpectedRun:
    """Parse guests/expected/<name>.txt."""
    text = (EXPECTED / f"{name}.txt").read_text()
    header, sep, transcript = text.partition("\n---\n")
    if not sep:
        raise ValueError(f"{name}.txt: no '---' line between header and transcript")
    fields: dict[str, str] = {}
    for line in header.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return ExpectedRun(
        name=name, disk=fields.get("disk"), kernel=fields.get("kernel"),
        append=fields.get("append"), cmdline=fields.get("cmdline"),
        wait_for=fields.get("wait-for"), input=_unescape(fields.get("input", "")),
        exit=fields.get("exit", "poweroff"), transcript=transcript)


def expected_names() -> list[str]:
    return sorted(p.stem for p in EXPECTED.glob("*.txt"))


def normalise(serial: str) -> str:
    lines = serial.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).rstrip("\n")


def _line_pattern(expected_line: str) -> re.Pattern[str]:
    parts = expected_line.rstrip().split(WILDCARD)
    return re.compile(".*".join(re.escape(p) for p in parts))


def transcript_mismatch(expected: str, actual: str) -> str | None:
    """None if the serial output matches the expected transcript, else the first difference."""
    want = normalise(expected).split("\n")
    got = normalise(actual).split("\n")
    for number, (w, g) in enumerate(zip(want, got), start=1):
        if not _line_pattern(w).fullmatch(g):
            return f"line {number}: expected {w!r}, got {g!r}"
    if len(want) != len(got):
        extra = got[len(want)] if len(got) > len(want) else want[len(got)]
        return (f"expected {len(want)} lines, got {len(got)} "
                f"(first {'extra' if len(got) > len(want) else 'missing'} line: {extra!r})")
    return None


# ---- running QEMU -------------------------------------------------------------

@dataclass
class QemuRun:
    output: str                 # everything the guest wrote to COM1
    returncode: int | None      # None when the run was killed at the timeout
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def qemu_command(disk: Path | None = None, kernel: Path | None = None,
                 append: str | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    cmd = [QEMU or "qemu-system-i386", *QEMU_BASE]
    if disk is not None:
        cmd += ["-drive", f"file={disk},format=raw,if=ide,index=0,media=disk"]
    if kernel is not None:
        cmd += ["-kernel", str(kernel)]
        if append is not None:
            cmd += ["-append", append]
    return cmd + list(extra)


def run_qemu(cmd: list[str], send: bytes = b"", wait_for: str | None = None,
             timeout: float = 8.0) -> QemuRun:
    """Run QEMU with COM1 on pipes; send `send` once `wait_for` was printed (or at
    once), and wait for QEMU to exit by itself, at most `timeout` seconds."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    chunks: list[bytes] = []
    seen = threading.Event()

    def reader() -> None:
        while data := os.read(proc.stdout.fileno(), 4096):
            chunks.append(data)
            if wait_for is None or wait_for.encode() in b"".join(chunks):
                seen.set()
        seen.set()                              # EOF: QEMU is gone

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        if send and seen.wait(timeout) and proc.poll() is None:
            proc.stdin.write(send)
            proc.stdin.flush()
        returncode: int | None = proc.wait(max(0.1, timeout - (time.monotonic() - start)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        returncode = None
    except BrokenPipeError:
        returncode = proc.wait()
    thread.join(2)
    proc.stdin.close()
    proc.stdout.close()
    return QemuRun(b"".join(chunks).decode("latin-1"), returncode,
                   time.monotonic() - start)


def run_expected(run: ExpectedRun, tmp_path: Path, timeout: float = 8.0) -> QemuRun:
    """Replay an expected run under QEMU, on a private copy of the disk image."""
    disk = kernel = None
    if run.disk:
        disk = tmp_path / run.disk
        shutil.copyfile(IMAGES / run.disk, disk)    # the guest may write to its disk
        if run.cmdline is not None:
            from sandbox.guestbuild import write_command_line
            write_command_line(disk, run.cmdline)
    if run.kernel:
        kernel = IMAGES / run.kernel
    cmd = qemu_command(disk=disk, kernel=kernel, append=run.append)
    return run_qemu(cmd, send=run.input, wait_for=run.wait_for, timeout=timeout)
