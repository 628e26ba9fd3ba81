"""Fast mode: slices by wall-clock time, one host thread per physical CPU, so vCPUs of
different VMs really run at the same time (Unicorn releases the GIL in emu_start).
Timing-dependent figures (speed-up) are in sched_bench; these tests check structure."""
from __future__ import annotations

import threading

import pytest
from asm import needs_as
from test_sched_guests import HOG, SMP_SPIN, build, cpu

from sandbox.events import EventRecorder

pytestmark = needs_as

MS = 1_000_000
FAST = "deterministic = false"


def overlaps(a, b):
    return any(s1 < e2 and s2 < e1 for s1, e1, _ in a for s2, e2, _ in b)


def test_two_pcpus_are_two_host_threads_running_at_once(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG}, {"name": "b", "guest": HOG}], cpus=2, host=FAST)
    threads = set()
    m.events.subscribe(lambda ev: threads.add(threading.current_thread().name), ["sched.switch"])
    m.power_on()
    assert m.run(until_ns=150 * MS) == "time"
    c = cpu(m)
    assert threads == {"pcpu0", "pcpu1"}
    assert c["a"]["run_seconds"] > 0.05 and c["b"]["run_seconds"] > 0.05
    cpus = m.hypervisor.host.cpus
    assert overlaps(cpus[0].history, cpus[1].history)
    sched = m.report()["host"]["scheduler"]
    assert (sched["mode"], sched["threads"], sched["serialised"]) == ("fast", 2, None)


def test_an_smp_vms_vcpus_take_turns_in_fast_mode(tmp_path):
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", SMP_SPIN), "vcpus": 2},
                         {"name": "hog", "guest": HOG}], cpus=2, host=FAST)
    m.power_on()
    m.run(until_ns=120 * MS)
    c = cpu(m)["smp"]["per_vcpu"]
    assert c[0]["run_seconds"] > 0.01 and c[1]["run_seconds"] > 0.01
    runs = {i: [h for cpu_ in m.hypervisor.host.cpus for h in cpu_.history if h[2] == f"smp/vcpu{i}"]
            for i in (0, 1)}
    assert not overlaps(runs[0], runs[1])


def test_a_limit_holds_in_fast_mode(tmp_path):
    m = build(tmp_path, [{"name": "capped", "guest": HOG, "cpu_limit": 30}], host=FAST)
    m.power_on()
    m.run(until_ns=150 * MS)
    assert 15 < cpu(m)["capped"]["received_percent"] < 33      # slices overshoot by the timer's latency


def test_a_broken_policy_falls_back_in_fast_mode_too(tmp_path):
    (tmp_path / "student.py").write_text("class Policy:\n    def pick(self, pcpu, runnable, now_ns):\n"
                                         "        raise RuntimeError('oops')\n")
    m = build(tmp_path, [{"name": "a", "guest": HOG}, {"name": "b", "guest": HOG}], cpus=2,
              scheduler="student:Policy", host=FAST)
    rec = EventRecorder(m.events, ["sched.policy_error"])
    m.power_on()
    m.run(until_ns=60 * MS)
    assert len(rec.events) == 1 and "RuntimeError: oops" in rec.events[0].data["message"]
    assert all(c["run_seconds"] > 0.01 for c in cpu(m).values())


def test_overcommitted_memory_serialises_the_vcpus(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG}, {"name": "b", "guest": HOG}], cpus=2,
              host=FAST + "\nmemory_mib = 3")
    m.power_on()
    m.run(until_ns=60 * MS)
    sched = m.report()["host"]["scheduler"]
    assert sched["serialised"].startswith("host memory is overcommitted (3 MiB for 4 MiB")
    cpus = m.hypervisor.host.cpus
    assert not overlaps(cpus[0].history, cpus[1].history)       # one vCPU at a time, on either pCPU
    assert cpus[0].busy_ns > 0 and cpus[1].busy_ns > 0
