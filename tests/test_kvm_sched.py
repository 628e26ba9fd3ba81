"""Shares and limits hold on KVM too, measured in wall time (the vCPUs are preempted with
immediate_exit and a signal at the end of each slice)."""
from __future__ import annotations

import shutil

import pytest

from sandbox.backends.kvm.probe import probe
from sandbox.guestbuild import IMAGES_DIR, write_command_line

KVM = probe()
pytestmark = [pytest.mark.kvm, pytest.mark.skipif(not KVM.usable, reason=f"KVM unusable: {KVM.problem()}")]


def test_shares_and_a_limit_hold_on_kvm(tmp_path):
    from sandbox.api import Machine
    for name in ("a", "b", "c"):
        shutil.copy(IMAGES_DIR / "cpuhog.img", tmp_path / f"{name}.img")
        write_command_line(tmp_path / f"{name}.img", "burn=1000000000 reports=0")
    (tmp_path / "m.toml").write_text("""
[host]
cpus = 1
backend = "kvm"
scheduler = "proportional"
[[vm]]
name = "a"
disk = "a.img"
cpu_shares = 2000
[[vm]]
name = "b"
disk = "b.img"
cpu_shares = 1000
[[vm]]
name = "c"
disk = "c.img"
cpu_shares = 4000
cpu_limit = 10
""")
    m = Machine(tmp_path / "m.toml")
    m.power_on()
    m.run(until_ns=1_500_000_000, wall_timeout_s=30)
    cpu = {v["name"]: v["cpu"] for v in m.report()["vms"]}
    m.close()
    assert cpu["c"]["received_fraction"] <= 0.10 + 0.02           # the limit, whatever its shares
    ratio = cpu["a"]["received_fraction"] / cpu["b"]["received_fraction"]
    assert 1.7 < ratio < 2.3, cpu                                  # 2000 : 1000 shares
