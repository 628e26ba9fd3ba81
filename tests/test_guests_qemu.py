"""The guests under QEMU, the reference PC: each expected transcript in guests/expected
is reproduced, and each run ends by itself (power-off or triple fault) within seconds."""
from __future__ import annotations

import shutil

import pytest

from qemu_ref import (IMAGES, expected_names, load_expected, qemu_available, qemu_command,
                      run_expected, run_qemu, transcript_mismatch)

pytestmark = [
    pytest.mark.qemu,
    pytest.mark.skipif(not qemu_available(), reason="qemu-system-i386 is not installed"),
]


@pytest.mark.parametrize("name", expected_names())
def test_guest_matches_its_expected_transcript(name, tmp_path):
    run = load_expected(name)
    result = run_expected(run, tmp_path)
    assert not result.timed_out, f"{name} did not stop by itself; output:\n{result.output}"
    assert result.returncode == 0, f"QEMU exit status {result.returncode} (isa-debug-exit?)"
    assert transcript_mismatch(run.transcript, result.output) is None, \
        transcript_mismatch(run.transcript, result.output) + "\n" + result.output


def test_every_guest_has_a_reference_run():
    runs = [load_expected(n) for n in expected_names()]
    booted = {r.disk or r.kernel for r in runs}
    assert {"hello.img", "crash.img", "cpuhog.img", "cpuhog.elf",
            "tinyos.img", "tinyos.elf"} <= booted
    assert {r.exit for r in runs} == {"poweroff", "triple-fault"}


def test_hello_greets_on_serial(tmp_path):
    result = run_expected(load_expected("hello"), tmp_path)
    assert "Hello from the guest!\r\n" in result.output


def test_crash_stops_after_its_line_without_running_on(tmp_path):
    result = run_expected(load_expected("crash"), tmp_path)
    assert result.output.startswith("crash: ")
    assert "still alive" not in result.output
    assert result.returncode == 0      # -no-reboot turns the reset into an exit


def test_cpuhog_disk_and_elf_compute_the_same_checksums(tmp_path):
    disk = run_expected(load_expected("cpuhog-sleep"), tmp_path)
    elf = run_expected(load_expected("cpuhog-elf"), tmp_path)
    sums = [[line for line in out.output.splitlines() if "checksum=" in line]
            for out in (disk, elf)]
    assert len(sums[0]) == 3 and sums[0] == sums[1]


def test_tinyos_keeps_input_typed_before_the_prompt(tmp_path):
    """COM1 runs without FIFOs, so input sent at power-on waits in the UART."""
    disk = tmp_path / "tinyos.img"
    shutil.copyfile(IMAGES / "tinyos.img", disk)
    result = run_qemu(qemu_command(disk=disk), send=b"echo early bird\npoweroff\n")
    assert result.returncode == 0
    assert "tinyos> echo early bird\r\nearly bird\r\n" in result.output


def test_tinyos_line_editing_backspace_and_crlf(tmp_path):
    disk = tmp_path / "tinyos.img"
    shutil.copyfile(IMAGES / "tinyos.img", disk)
    result = run_qemu(qemu_command(disk=disk), wait_for="tinyos>",
                      send=b"echo abX\x7fc\r\nuptime\rpoweroff\r\n")
    out = result.output.replace("\r\n", "\n")
    assert "echo abX\b \bc\nabc\n" in out
    assert "tinyos> uptime\nuptime: " in out and "(PIT at 100 Hz)" in out
    assert "tinyos> tinyos>" not in out         # \r\n is one Enter, not two


def test_tinyos_elf_finds_the_filesystem_on_an_attached_disk(tmp_path):
    disk = tmp_path / "tinyos.img"
    shutil.copyfile(IMAGES / "tinyos.img", disk)
    cmd = qemu_command(disk=disk, kernel=IMAGES / "tinyos.elf")
    result = run_qemu(cmd, wait_for="tinyos>", send=b"cat poem.txt\npoweroff\n")
    assert "tinyos: booted by qemu" in result.output
    assert "fs: TinyFS with 3 files" in result.output
    assert "The Guest" in result.output


def test_loader_falls_back_to_chs_reads_on_a_floppy(tmp_path):
    """SeaBIOS has no int 13h extensions for floppies, so the loader must use AH=02h
    with the 18-sector, 2-head geometry: the kernel spans several tracks."""
    floppy = tmp_path / "floppy.img"
    image = (IMAGES / "tinyos.img").read_bytes()
    floppy.write_bytes(image + bytes(1474560 - len(image)))
    cmd = qemu_command(extra=("-drive", f"file={floppy},format=raw,if=floppy"))
    result = run_qemu(cmd, wait_for="tinyos>", send=b"mem\nls\npoweroff\n")
    assert "tinyos: booted by sandbox-loader" in result.output
    assert "ls: no disk" in result.output       # a floppy is not an ATA disk
    assert "usable RAM:" in result.output
    assert result.returncode == 0
