"""Lab 3's harness: a machine of two twins guests whose scanner merges with the
student's ``merge`` function."""
from pathlib import Path

import pytest

from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.guestbuild import IMAGES_DIR
from sandbox.hypervisor.page_sharing import ZERO

TWINS_KIB = 256
RUN_MS = 400


def twins_machine() -> MachineConfig:
    host = HostConfig(cpus=1, memory_mib=40, page_sharing=True, pages_to_scan=512, scan_period_ms=5)
    vms = [VmConfig(name=name, memory_mib=8, kernel=Path(IMAGES_DIR / "twins.elf"),
                    cmdline=f"kib={TWINS_KIB} checks=4 interval=5") for name in ("left", "right")]
    return MachineConfig(host, vms)


def install_merge(machine, merge) -> None:
    """Route the scanner's merge step through ``merge``; the scanner keeps its books
    (the counters and the mem.share event of PageSharing._merge) around it."""
    sharing = machine.hypervisor.memory_manager.sharing

    def merge_step(acct, gfn, hfn, shared):
        merge(sharing, acct, gfn, hfn, shared)
        sharing.merges += 1
        sharing.volatile.get(acct.name, set()).discard(gfn)
        key = sharing.stable_key.get(shared)
        sharing.mm.emit("mem.share", acct.name, gfn=gfn, hfn=shared, old_hfn=hfn,
                        zero=key is not None and key[1] == ZERO)

    sharing._merge = merge_step


@pytest.fixture
def twins(student_module, make_machine):
    """The two twins, run to the end with the student's merge step."""
    merge = student_module("merge.py").merge
    machine = make_machine(twins_machine())
    install_merge(machine, merge)
    machine.power_on()
    machine.run(until_ns=RUN_MS * 1_000_000, wall_timeout_s=25)
    return machine
