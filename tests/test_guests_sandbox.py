"""Every shipped guest runs on the sandbox exactly as under QEMU: the same serial
transcripts (guests/expected/*.txt, also replayed on QEMU by test_guests_qemu.py)."""
from __future__ import annotations

import shutil

import pytest
from qemu_ref import expected_names, load_expected, transcript_mismatch

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.guestbuild import IMAGES_DIR, write_command_line

EXIT_STATES = {"poweroff": "powered_off", "triple-fault": "crashed"}


def run_expected(name: str, tmp_path, backend: str = "unicorn", deterministic: bool = True):
    exp = load_expected(name)
    disk = kernel = None
    if exp.disk:
        disk = tmp_path / exp.disk
        shutil.copy(IMAGES_DIR / exp.disk, disk)
        if exp.cmdline:
            write_command_line(disk, exp.cmdline)
    if exp.kernel:
        kernel = IMAGES_DIR / exp.kernel
    vm = VmConfig(name=name, memory_mib=16, disk=disk, kernel=kernel, cmdline=exp.append or "",
                  input=exp.input)
    m = Machine(MachineConfig(HostConfig(backend=backend, deterministic=deterministic), [vm]))
    m.power_on()
    m.run(wall_timeout_s=60)
    result = m.vm()
    m.close()
    return exp, result


@pytest.mark.parametrize("name", expected_names())
def test_guest_matches_qemu_transcript(name, tmp_path):
    exp, vm = run_expected(name, tmp_path)
    actual = vm.console.decode("latin-1")
    problem = transcript_mismatch(exp.transcript, actual)
    assert problem is None, f"{name}: {problem}\n--- serial ---\n{actual}"
    assert vm.state.value == EXIT_STATES[exp.exit], vm.exit_reason
