"""The scheduling mechanism: blocking and waking, ready time, the event trace (one
``sched.switch`` per decision, enough to draw a Gantt chart), determinism, SMP guests
and the report that ``sandbox run --report`` writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from asm import disk_image, needs_as
from test_sched_guests import DATA, HOG, IDLE, SMP_SPIN, START_AP, build, cpu

from sandbox.api import Machine
from sandbox.cli.main import main
from sandbox.events import EventRecorder

pytestmark = needs_as

MS = 1_000_000


def run(m, ms):
    m.power_on()
    outcome = m.run(until_ns=ms * MS)
    return outcome, cpu(m)


def test_idle_vcpus_block_use_no_cpu_and_are_not_ready(tmp_path):
    m = build(tmp_path, [{"name": "idle", "guest": IDLE}, {"name": "hog", "guest": HOG}])
    rec = EventRecorder(m.events, ["sched.block", "sched.wake"])
    _, c = run(m, 300)
    assert c["idle"]["run_seconds"] < 0.0005                 # a few timer interrupts' worth
    # it waited for one tick after power-on (the hog went first); woken, it runs at once
    assert c["idle"]["ready_seconds"] == pytest.approx(0.001, abs=1e-6)
    assert c["hog"]["run_seconds"] == pytest.approx(0.3, abs=0.001)
    assert len(rec.of("sched.wake", "idle")) >= 5            # the BIOS timer, 18.2 Hz
    assert m.report()["vms"][0]["cpu"]["per_vcpu"][0]["state"] == "blocked"


def test_a_host_where_every_vcpu_sleeps_forever_is_idle(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": "cli\nhlt\n"}, {"name": "b", "guest": "sti\n1: jmp 1b\n"}])
    outcome, c = run(m, 10)
    assert outcome == "time" and m.vms["a"].state.value == "powered_off"
    assert c["b"]["run_seconds"] == pytest.approx(0.01, abs=0.0001)


def _trace(tmp_path):
    vms = [{"name": "smp", "guest": ("smp", SMP_SPIN), "vcpus": 2, "cpu_shares": "high"},
           {"name": "hog", "guest": HOG, "cpu_limit": 40},
           {"name": "idle", "guest": IDLE}]
    m = build(tmp_path, vms, cpus=2)
    events = []
    m.events.subscribe(events.append)
    run(m, 60)
    return m, [(e.kind, e.time_ns, e.vm, json.dumps(e.data, sort_keys=True)) for e in events]


def test_two_deterministic_runs_give_the_same_trace(tmp_path):
    _, first = _trace(tmp_path)
    _, second = _trace(tmp_path)
    assert len([e for e in first if e[0] == "sched.switch"]) > 100
    assert first == second


def test_the_switch_events_are_a_gantt_chart_of_the_report(tmp_path):
    m, trace = _trace(tmp_path)
    end = m.now_ns
    switches = [(t, json.loads(d)) for kind, t, _vm, d in trace if kind == "sched.switch"]
    for _, data in switches:
        assert set(data) >= {"pcpu", "vcpu_in", "vcpu_out", "reason", "policy"}
    # Each pCPU runs what its last switch put on it until its next switch.
    ran: dict[str, int] = {}
    for p in range(2):
        mine = [(t, d["vcpu_in"]) for t, d in switches if d["pcpu"] == p]
        for (t0, who), (t1, _) in zip(mine, mine[1:] + [(end, None)]):
            if who is not None:
                ran[who] = ran.get(who, 0) + t1 - t0
    report = {f"{vm}/vcpu{v['index']}": v["run_seconds"] for vm, c in cpu(m).items() for v in c["per_vcpu"]}
    for who, seconds in report.items():
        assert ran.get(who, 0) / 1e9 == pytest.approx(seconds, abs=2e-4), who


def test_an_smp_guest_starts_its_second_vcpu_and_sees_both(tmp_path):
    body = DATA + START_AP + """
    cmp $0, %eax
    jne 9f
1:  cmpl $100000, ap_count
    jb 1b
    mov ap_index, %eax              # the AP got its own index in EAX
    add $0x40, %al
    jmp exit_al
9:  mov $0xEE, %al
    jmp exit_al
ap_entry:
    mov %eax, ap_index
2:  incl ap_count
    jmp 2b
"""
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", body), "vcpus": 2}])
    rec = EventRecorder(m.events, ["sched.vcpu_start", "sched.switch"])
    outcome, c = run(m, 100)
    vm = m.vms["smp"]
    assert vm.state.value == "powered_off" and vm.exit_status == (0x41 << 1) | 1
    assert [(e.data["vcpu"], e.data["esp"]) for e in rec.of("sched.vcpu_start")] == [(1, 0x70000)]
    assert {e.data["vcpu_in"] for e in rec.of("sched.switch")} >= {"smp/vcpu0", "smp/vcpu1"}
    assert all(v["run_seconds"] > 0 for v in c["smp"]["per_vcpu"])


def test_a_halted_ap_sleeps_until_another_vcpu_kicks_it(tmp_path):
    body = DATA + START_AP + """
1:  cmpl $1, ap_ready
    jne 1b
2:  mov $0x21, %eax                 # kick_vcpu(1): 1 while it has not halted yet
    mov $1, %ebx
    mov $0x0d00, %dx
    out %eax, %dx
    cmp $0, %eax
    jne 2b
3:  cmpl $0x55, ap_woke
    jne 3b
    mov $0x55, %al
    jmp exit_al
ap_entry:
    sti
    movl $1, ap_ready
    hlt
    movl $0x55, ap_woke
4:  hlt
    jmp 4b
"""
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", body), "vcpus": 2}], cpus=2)
    rec = EventRecorder(m.events, ["sched.wake", "sched.block"])
    run(m, 50)
    assert m.vms["smp"].exit_status == (0x55 << 1) | 1
    assert [(e.kind, e.data["vcpu"]) for e in rec.events][:2] == [("sched.block", 1), ("sched.wake", 1)]
    assert rec.of("sched.wake")[0].data["reason"] == "kick"


def test_an_ap_cannot_be_started_twice_or_out_of_range(tmp_path):
    body = DATA + START_AP + """
    mov %eax, %ebp
    mov $0x20, %eax                 # again: -1
    mov $1, %ebx
    out %eax, %dx
    add %eax, %ebp
    mov $0x20, %eax                 # vCPU 5 of 2: -1
    mov $5, %ebx
    out %eax, %dx
    add %eax, %ebp
    mov %ebp, %eax                  # 0 - 1 - 1 = -2: 0xFE
    jmp exit_al
ap_entry:
    jmp ap_entry
"""
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", body), "vcpus": 2}])
    run(m, 20)
    assert m.vms["smp"].exit_status == (0xFE << 1) | 1


def test_sandbox_run_writes_the_report(tmp_path, capsys):
    m = build(tmp_path, [{"name": "web", "guest": ("smp", SMP_SPIN), "vcpus": 2, "cpu_shares": "high",
                          "cpu_reservation": 50, "cpu_limit": 80},
                         {"name": "db", "guest": HOG}, {"name": "batch", "guest": HOG}], cpus=2)
    m.close()
    out = tmp_path / "report.json"
    status = main(["run", str(tmp_path / "machine.toml"), "--for", "0.05", "--report", str(out), "--quiet"])
    assert status == 0
    report = json.loads(out.read_text())
    assert [c["index"] for c in report["host"]["cpus"]] == [0, 1]
    assert all(c["busy_seconds"] == pytest.approx(0.05, abs=0.001) for c in report["host"]["cpus"])
    assert report["host"]["scheduler"]["policy"] == "proportional"
    web = report["vms"][0]
    assert {"name", "state", "exit_reason", "console", "cpu"} <= set(web)
    assert {"run_seconds", "ready_seconds", "costop_seconds", "entitled_fraction",
            "received_fraction"} <= set(web["cpu"])
    assert web["cpu"]["received_percent"] <= 80.0
    bsp, ap = web["cpu"]["per_vcpu"]          # the AP's time starts when the BSP starts it
    assert bsp["run_seconds"] + bsp["ready_seconds"] + bsp["costop_seconds"] == pytest.approx(0.05, abs=1e-5)
    assert 0.04 < ap["run_seconds"] + ap["ready_seconds"] + ap["costop_seconds"] < 0.05


TINYOS = Path(__file__).resolve().parent.parent / "guests" / "images" / "tinyos.img"


@pytest.mark.skipif(not TINYOS.exists(), reason="guests/images/tinyos.img not built")
@pytest.mark.parametrize("policy", ["proportional", "credit"])
def test_tinyos_keeps_scheduling_its_own_tasks_inside_a_vcpu(tmp_path, policy):
    # tinyos's timer-driven scheduler runs two tasks inside one vCPU that shares the pCPU
    # with a CPU hog: its PIT ticks arrive while it is descheduled, and it still works.
    disk_image(tmp_path / "hog.img", HOG)
    (tmp_path / "machine.toml").write_text(f"""
[host]
cpus = 1
scheduler = "{policy}"
[[vm]]
name = "tinyos"
disk = "{TINYOS}"
readonly = true
cpu_shares = "high"
[[vm]]
name = "hog"
disk = "hog.img"
memory_mib = 2
readonly = true
""")
    m = Machine(tmp_path / "machine.toml")
    m.power_on()
    m.run(until_ns=150 * MS)
    m.feed("tinyos", "ps\n")
    m.run(until_ns=250 * MS)
    console = m.vms["tinyos"].console.decode("latin-1")
    assert "tinyos: starting the scheduler" in console and "counter" in console.split("tinyos> ps")[-1]
    assert cpu(m)["hog"]["run_seconds"] > 0.1
