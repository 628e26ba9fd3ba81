"""The teacher's demonstration in docs/memory.md, run as written: a host overcommitted
more than 3:1 with guests that check their own memory; sharing, ballooning and swapping
take over in that order; isolation holds throughout."""
from __future__ import annotations

import re

from sandbox.api import Machine
from sandbox.config.load import load_machine
from sandbox.events import EventRecorder
from sandbox.guestbuild import GUESTS_DIR

DOC = GUESTS_DIR.parent / "docs" / "memory.md"
MS = 1_000_000


def documented_scenario(tmp_path):
    text = DOC.read_text()
    toml = re.search(r"Save this as `overcommit.toml`.*?```toml\n(.*?)```", text, re.S).group(1)
    path = tmp_path / "overcommit.toml"
    path.write_text(toml.replace('"guests/images/', f'"{GUESTS_DIR}/images/'))
    return load_machine(path)


def test_the_documented_overcommit_runs_sharing_then_balloon_then_swap(tmp_path):
    config = documented_scenario(tmp_path)
    guest_mib = sum(vm.memory_mib for vm in config.vms)
    assert guest_mib >= 3 * config.host.memory_mib
    m = Machine(config)
    rec = EventRecorder(m.events, ["mem.share", "mem.balloon", "mem.swap_out", "mem.swap_in", "mem.state"])
    m.power_on()
    outcome = "time"
    while outcome == "time":
        outcome = m.run(until_ns=m.now_ns + 100 * MS, wall_timeout_s=60)
        assert m.memcheck(content=False) == []
    assert outcome == "stopped" and m.memcheck() == []
    for vm in m.vms.values():
        assert "done, 0 errors" in vm.console.decode(), f"{vm.name}: {vm.console.decode()}"
    first = {}
    for e in rec.events:
        first.setdefault(e.kind if e.kind != "mem.balloon" else f"balloon:{e.data['action']}", e.time_ns)
    assert first["mem.share"] < first["balloon:inflate"] < first["mem.swap_out"] < first["mem.swap_in"]
    states = [e.data["new"] for e in rec.events if e.kind == "mem.state"]
    assert states.index("soft") < states.index("hard")
    mm = m.hypervisor.memory_manager
    assert mm.accounts["hog"].swap_outs > mm.accounts["cache"].swap_outs
    m.close()
