"""Lab 2's harness: CPU-bound cpuhog VMs on one physical CPU, scheduled by the
student's FairPolicy."""
from pathlib import Path

import pytest

from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.guestbuild import IMAGES_DIR

RUN_MS = 300


def machine(vms: dict[str, tuple[int, str]]) -> MachineConfig:
    """``vms``: name -> (shares, cpuhog command line)."""
    host = HostConfig(cpus=1, scheduler="policy:FairPolicy")
    return MachineConfig(host, [VmConfig(name=name, memory_mib=4, kernel=Path(IMAGES_DIR / "cpuhog.elf"),
                                         cmdline=cmdline, cpu_shares=shares)
                                for name, (shares, cmdline) in vms.items()])


@pytest.fixture
def run_policy(student_module, make_machine):
    """Run VMs under the student's policy; returns each VM's percent of the CPU."""
    student_module("policy.py")                 # importable as "policy" while the test runs

    def run(vms: dict[str, tuple[int, str]], ms: float = RUN_MS) -> dict[str, float]:
        m = make_machine(machine(vms))
        m.power_on()
        m.run(until_ns=int(ms * 1_000_000), wall_timeout_s=15)
        failure = m.hypervisor.scheduler.failure
        if failure is not None:
            pytest.fail(str(failure), pytrace=False)
        return {v["name"]: v["cpu"]["received_percent"] for v in m.report()["vms"]}
    return run
