"""A VM's life cycle controls: pause, resume and restart (``VirtualMachine`` and
``sandbox.api.Machine``), as the explorer's buttons use them."""
from __future__ import annotations

from pathlib import Path

import pytest

from asm import disk_image, needs_as
from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.errors import SandboxError
from sandbox.vm.machine import VmState

pytestmark = [needs_as, pytest.mark.timeout(60)]

# Says "up" on COM1, then counts for ever (never halts).
COUNTER = r"""
    mov $0x3f8, %dx
    mov $'u', %al
    out %al, %dx
    mov $'p', %al
    out %al, %dx
1:  inc %ax
    jmp 1b
"""
MS = 1_000_000


@pytest.fixture
def machine(tmp_path: Path):
    vms = [VmConfig(name=n, disk=disk_image(tmp_path / f"{n}.img", COUNTER)) for n in ("a", "b")]
    with Machine(MachineConfig(HostConfig(cpus=1), vms)) as m:
        events: list = []
        m.events.subscribe(events.append, {"vm.paused", "vm.resumed", "vm.reset", "vm.stopped"})
        m.seen = events
        m.power_on()
        m.run_for(5 * MS)
        yield m


def ran(m: Machine, name: str) -> int:
    return sum(c.stats.instructions for c in m.vms[name].vcpus)


def test_a_paused_vm_makes_no_progress_while_the_other_keeps_running(machine):
    machine.pause("a")
    assert machine.vms["a"].state == VmState.PAUSED
    a, b = ran(machine, "a"), ran(machine, "b")
    machine.run_for(10 * MS)
    assert ran(machine, "a") == a
    assert ran(machine, "b") > b
    assert [e.kind for e in machine.seen] == ["vm.paused"]


def test_a_resumed_vm_runs_again_from_where_it_was(machine):
    machine.pause("a")
    machine.run_for(10 * MS)
    a = ran(machine, "a")
    machine.resume("a")
    machine.run_for(10 * MS)
    assert machine.vms["a"].state == VmState.RUNNING and ran(machine, "a") > a
    assert machine.vms["a"].console == b"up"                 # it went on; it did not reboot
    assert machine.vms["a"].clock.now() >= machine.now_ns - 2 * MS   # its clock skipped the pause


def test_pause_and_resume_refuse_a_vm_in_the_wrong_state(machine):
    with pytest.raises(SandboxError, match="not paused"):
        machine.resume("a")
    machine.vms["a"].crash("test")
    with pytest.raises(SandboxError, match="crashed, not running"):
        machine.pause("a")


def test_restart_after_a_crash_boots_again_with_clean_memory(machine):
    vm = machine.vms["a"]
    vm.memory.write(0x9000, b"left over")
    vm.crash("crashed on purpose")
    machine.run_for(5 * MS)
    assert vm.state == VmState.CRASHED
    machine.restart("a")
    assert vm.state == VmState.RUNNING and vm.exit_reason is None
    assert vm.memory.read(0x9000, 9) == bytes(9)            # RAM does not survive a power cycle
    machine.run_for(5 * MS)
    assert vm.console == b"upup"                               # booted from its disk again
    assert [e.kind for e in machine.seen] == ["vm.stopped", "vm.reset"]


def test_restart_of_a_running_vm_reboots_it_and_a_new_vm_is_refused(tmp_path, machine):
    machine.restart("b")
    machine.run_for(5 * MS)
    assert machine.vms["b"].console == b"upup"
    config = MachineConfig(HostConfig(), [VmConfig(name="c", disk=disk_image(tmp_path / "c.img", COUNTER))])
    with Machine(config) as fresh, pytest.raises(SandboxError, match="never powered on"):
        fresh.restart("c")
