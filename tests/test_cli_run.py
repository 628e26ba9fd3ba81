"""`sandbox run` as a student uses it: output, exit statuses, one-line errors."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from asm import disk_image, needs_as

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "guests" / "images"


def sandbox(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_hello_streams_serial_and_exits_zero():
    r = sandbox("run", str(IMAGES / "hello.img"))
    assert r.returncode == 0, r.stderr
    assert "Hello from the guest!" in r.stdout


def test_screen_prints_the_vga_text():
    r = sandbox("run", str(IMAGES / "hello.img"), "--screen", "--quiet")
    assert r.returncode == 0
    assert "hello: real mode, BIOS teletype" in r.stdout
    assert "Hello from the guest!" in r.stdout


def test_tinyos_shell_via_input(tmp_path):
    disk = tmp_path / "tinyos.img"
    shutil.copy(IMAGES / "tinyos.img", disk)
    r = sandbox("run", str(disk), "--input", r"ls\ncat motd\nuptime\npoweroff\n")
    assert r.returncode == 0, r.stderr
    assert "motd" in r.stdout and "Welcome to tinyos!" in r.stdout
    assert "tinyos: powering off" in r.stdout


def test_multiboot_kernel_like_qemu_kernel():
    r = sandbox("run", "--kernel", str(IMAGES / "tinyos.elf"), "--input", r"mem\npoweroff\n")
    assert r.returncode == 0, r.stderr
    assert "Multiboot" in r.stdout or "memory" in r.stdout


def test_triple_fault_is_reported_nonzero():
    r = sandbox("run", str(IMAGES / "crash.img"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0
    assert "triple fault" in r.stderr


@needs_as
def test_isa_debug_exit_status(tmp_path):
    img = disk_image(tmp_path / "x.img", "mov $0x21, %al\nmov $0xf4, %dx\nout %al, %dx\n")
    r = sandbox("run", str(img))
    assert r.returncode == (0x21 << 1) | 1


@needs_as
def test_timeout_is_nonzero_with_reason(tmp_path):
    img = disk_image(tmp_path / "loop.img", "1: jmp 1b\n")
    r = sandbox("run", str(img), "--timeout", "0.5")
    assert r.returncode == 124
    assert "timed out" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["run", "no/such/disk.img"], "not found"),
    (["run", "--kernel", "no/such/kernel.elf"], "not found"),
    (["run", "--memory", "1", str(IMAGES / "hello.img")], "--memory"),
])
def test_bad_input_is_one_line_exit_2(args, message):
    r = sandbox(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr


def test_image_without_boot_signature(tmp_path):
    img = tmp_path / "blank.img"
    img.write_bytes(bytes(1024))
    r = sandbox("run", str(img))
    assert r.returncode == 2 and "0x55AA" in r.stderr and "Traceback" not in r.stderr


def test_elf_that_is_not_multiboot(tmp_path):
    r = sandbox("run", "--kernel", sys.executable)
    assert r.returncode == 2 and "Multiboot" in r.stderr and "Traceback" not in r.stderr


@needs_as
def test_memory_too_small_for_the_kernel(tmp_path):
    import subprocess as sp
    src = tmp_path / "k.S"
    src.write_text(""".section .text
.align 4
.long 0x1BADB002, 0x00000003, -(0x1BADB002 + 0x00000003)
.globl _start
_start: cli
    hlt
""")
    sp.run(["as", "--32", "-o", tmp_path / "k.o", src], check=True)
    sp.run(["ld", "-m", "elf_i386", "-Ttext", "0x400000", "-e", "_start", "-o", tmp_path / "k.elf",
            tmp_path / "k.o"], check=True)
    r = sandbox("run", "--kernel", str(tmp_path / "k.elf"), "--memory", "2")
    assert r.returncode == 2 and "more memory" in r.stderr and "Traceback" not in r.stderr
    r = sandbox("run", "--kernel", str(tmp_path / "k.elf"), "--memory", "8")
    assert r.returncode == 0, r.stderr


def test_kernel_outside_ram_is_refused(tmp_path):
    from sandbox.errors import ImageError
    from sandbox.firmware.multiboot import _check_range
    from sandbox.vm.memory import GuestMemory
    from sandbox.host.ram import FramePool
    mem = GuestMemory("vm", 2 << 20, FramePool(1024), lambda m, g, w: -1)
    with pytest.raises(ImageError, match="more memory"):
        _check_range("k.elf", mem, 0x100000, 0x400000)


@pytest.mark.parametrize("toml, message", [
    ('[host]\ncpus = 1\n[[vm]]\nname = "a"\nmemroy_mib = 16\ndisk = "x.img"\n', "unknown key 'memroy_mib' (did you mean 'memory_mib'?)"),
    ('[host]\ncpus = "two"\n[[vm]]\nname = "a"\ndisk = "x.img"\n', "'cpus' must be int"),
    ('[host]\ncpus = 0\n[[vm]]\nname = "a"\ndisk = "x.img"\n', "'cpus' = 0 must be between"),
    ('[[vm]]\nname = "a"\ndisk = "missing.img"\n', "disk 'missing.img' not found"),
    ('[[vm]]\nname = "a"\n', "needs 'disk' or 'kernel'"),
    ('[hots]\n', "unknown section 'hots'"),
    ('[[vm]\n', "not valid TOML"),
])
def test_bad_config_names_key_and_file(tmp_path, toml, message):
    (tmp_path / "x.img").write_bytes(bytes(510) + b"\x55\xaa")
    cfg = tmp_path / "machine.toml"
    cfg.write_text(toml)
    r = sandbox("run", str(cfg))
    assert r.returncode == 2, r.stdout
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "machine.toml" in line
    assert message in line


def test_multi_vm_config_crash_is_contained(tmp_path):
    for name in ("hello.img", "crash.img", "tinyos.img"):
        shutil.copy(IMAGES / name, tmp_path / name)
    (tmp_path / "machine.toml").write_text("""
[host]
cpus = 1
memory_mib = 64
[[vm]]
name = "crashy"
disk = "crash.img"
[[vm]]
name = "os"
disk = "tinyos.img"
input = "uptime\\npoweroff\\n"
[[vm]]
name = "hi"
disk = "hello.img"
""")
    r = sandbox("run", str(tmp_path / "machine.toml"))
    assert "[crashy] crash:" in r.stdout
    assert "[os] tinyos: powering off" in r.stdout
    assert "[hi] Hello from the guest!" in r.stdout
    assert "VM crashy crashed: triple fault" in r.stderr
    assert r.returncode == 1


def test_trace_is_json_lines_and_deterministic(tmp_path):
    outs = []
    for i in range(2):
        (tmp_path / f"run{i}").mkdir()
        disk = tmp_path / f"run{i}" / "tinyos.img"       # same VM name in both runs
        shutil.copy(IMAGES / "tinyos.img", disk)
        trace = tmp_path / f"trace{i}.jsonl"
        r = sandbox("run", str(disk), "--input", r"ps\npoweroff\n", "--trace", str(trace), "--quiet")
        assert r.returncode == 0
        events = [json.loads(line) for line in trace.read_text().splitlines()]
        for e in events:
            e["data"].pop("path", None)
            e["data"].pop("image", None)
        outs.append(events)
    assert outs[0] == outs[1]
    kinds = [e["kind"] for e in outs[0]]
    workflow = [k for k in kinds if k.startswith("power.")]
    assert workflow == ["power.allocate_vcpus", "power.allocate_ram", "power.open_disk",
                        "power.firmware_boot_read", "power.guest_start", "power.running"]
    assert all({"time_ns", "layer", "vm", "kind"} <= set(e) for e in outs[0])
