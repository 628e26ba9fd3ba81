"""Proportional share as ESXi defines it: shares divide contended CPU, a reservation is
guaranteed, a limit is never exceeded, admission control refuses what cannot be
reserved, and an SMP VM's vCPUs are kept in step (co-stop)."""
from __future__ import annotations

import pytest
from asm import needs_as
from test_sched_guests import HOG, SMP_SPIN, build, cpu

from sandbox.errors import ConfigError
from sandbox.hypervisor.admission import AdmissionError
from sandbox.events import EventRecorder

pytestmark = needs_as

MS = 1_000_000


def run(m, ms):
    m.power_on()
    m.run(until_ns=ms * MS)
    return cpu(m)


def test_shares_2000_1000_1000_on_one_pcpu_give_half_quarter_quarter(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG, "cpu_shares": "high"},
                         {"name": "b", "guest": HOG, "cpu_shares": 1000},
                         {"name": "c", "guest": HOG}])
    c = run(m, 300)
    assert c["a"]["received_fraction"] == pytest.approx(0.50, abs=0.02)
    assert c["b"]["received_fraction"] == pytest.approx(0.25, abs=0.02)
    assert c["c"]["received_fraction"] == pytest.approx(0.25, abs=0.02)
    for name, share in (("a", 0.5), ("b", 0.25), ("c", 0.25)):
        assert c[name]["entitled_fraction"] == pytest.approx(share, abs=1e-6)
        # waiting for the pCPU is ready time: everything that was not run time
        assert c[name]["run_seconds"] + c[name]["ready_seconds"] == pytest.approx(0.3, abs=0.002)


def test_a_limit_is_never_exceeded_even_on_an_idle_host(tmp_path):
    m = build(tmp_path, [{"name": "capped", "guest": HOG, "cpu_limit": 30}])
    c = run(m, 200)["capped"]
    assert c["received_percent"] <= 30.0
    assert c["received_percent"] > 28.0
    assert c["limited_seconds"] == pytest.approx(0.2 - c["run_seconds"], abs=0.002)
    # at the end of every slice, the VM's CPU time so far is within its limit
    total = 0
    for start, end, _name in m.hypervisor.host.cpus[0].history:
        total += end - start
        assert total <= 0.30 * end + 1_000, (start, end)
    assert m.hypervisor.host.cpus[0].busy_ns < 0.31 * 200 * MS      # the pCPU idles the rest


def test_a_limit_holds_under_contention_and_the_rest_goes_to_others(tmp_path):
    m = build(tmp_path, [{"name": "capped", "guest": HOG, "cpu_limit": 20, "cpu_shares": "high"},
                         {"name": "other", "guest": HOG}])
    c = run(m, 200)
    assert 18.0 < c["capped"]["received_percent"] <= 20.0
    assert c["other"]["received_percent"] == pytest.approx(100 - c["capped"]["received_percent"], abs=0.5)


def test_a_reservation_holds_under_contention(tmp_path):
    # By shares alone "small" would get 500 / 4500 = 11 %; it reserved 60 %.
    m = build(tmp_path, [{"name": "small", "guest": HOG, "cpu_shares": "low", "cpu_reservation": 60},
                         {"name": "big1", "guest": HOG, "cpu_shares": "high"},
                         {"name": "big2", "guest": HOG, "cpu_shares": "high"}])
    c = run(m, 300)
    assert c["small"]["received_percent"] >= 59.0
    assert c["small"]["entitled_percent"] == pytest.approx(60, abs=0.1)
    assert c["big1"]["received_percent"] == pytest.approx(20, abs=1.5)
    assert c["big2"]["received_percent"] == pytest.approx(20, abs=1.5)


def test_a_reservation_on_two_pcpus(tmp_path):
    m = build(tmp_path, [{"name": "db", "guest": HOG, "cpu_shares": "low", "cpu_reservation": 90}]
              + [{"name": f"web{i}", "guest": HOG, "cpu_shares": "high"} for i in range(3)], cpus=2)
    c = run(m, 200)
    assert c["db"]["received_percent"] >= 89.0
    assert sum(v["received_percent"] for v in c.values()) == pytest.approx(200, abs=1)


def test_admission_control_refuses_a_reservation_that_does_not_fit(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG, "cpu_reservation": 70},
                         {"name": "b", "guest": HOG, "cpu_reservation": 50}])
    rec = EventRecorder(m.events, ["sched.admit"])
    with pytest.raises(AdmissionError) as e:
        m.power_on()
    assert str(e.value) == ("admission control refused VM 'b': it reserves 50% of a CPU but only 30% of "
                            "the host's 100% is unreserved (reserved by: a 70%)")
    assert [(ev.vm, ev.data["admitted"]) for ev in rec.events] == [("a", True), ("b", False)]
    assert m.vms["a"].state.value == "running" and m.vms["b"].state.value == "created"


def test_admission_counts_every_pcpu(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG, "cpu_reservation": 70},
                         {"name": "b", "guest": HOG, "cpu_reservation": 100},
                         {"name": "c", "guest": HOG, "cpu_reservation": 30}], cpus=2)
    m.power_on()                                        # 200 % reserved of 200 %: fits exactly
    assert all(vm.state.value == "running" for vm in m.vms.values())


def test_a_reservation_a_vm_cannot_use_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cpu_reservation 150% is more than its 1 vCPU"):
        build(tmp_path, [{"name": "a", "guest": HOG, "cpu_reservation": 150}])
    with pytest.raises(ConfigError, match="cpu_limit 20% is below its cpu_reservation 30%"):
        build(tmp_path, [{"name": "a", "guest": HOG, "cpu_reservation": 30, "cpu_limit": 20}])


FAVOUR_FIRST = '''
from sandbox.hypervisor.policies.proportional import ProportionalShare

class FavourFirst(ProportionalShare):
    """Always prefers a VM's vCPU 0: only co-stop keeps its sibling going."""
    def pick(self, pcpu, runnable, now_ns):
        first = [c for c in runnable if c.index == 0]
        if first:
            super().pick(pcpu, runnable, now_ns)
            return first[0]
        return super().pick(pcpu, runnable, now_ns)
'''


def test_costop_keeps_smp_vcpus_in_step(tmp_path):
    (tmp_path / "favour.py").write_text(FAVOUR_FIRST)
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", SMP_SPIN), "vcpus": 2}],
              scheduler="favour:FavourFirst")
    rec = EventRecorder(m.events, ["sched.throttle"])
    c = run(m, 100)["smp"]
    v0, v1 = c["per_vcpu"]
    assert v0["costop_seconds"] > 0.02                  # vCPU 0 was held back...
    assert abs(v0["run_seconds"] - v1["run_seconds"]) < 0.005     # ...so both progressed
    assert c["costop_seconds"] == v0["costop_seconds"] + v1["costop_seconds"]
    assert {ev.data["reason"] for ev in rec.events} == {"costop", "ready"}


def test_an_administrator_changes_shares_and_reservations_while_vms_run(tmp_path):
    m = build(tmp_path, [{"name": "a", "guest": HOG}, {"name": "b", "guest": HOG, "cpu_reservation": 40}])
    run(m, 100)
    sched = m.hypervisor.scheduler
    before = cpu(m)["b"]["run_seconds"]
    sched.set_params("b", shares=3000)                   # b now has 3 shares for a's 1
    m.run(until_ns=300 * MS)
    assert (cpu(m)["b"]["run_seconds"] - before) / 0.2 == pytest.approx(0.75, abs=0.02)
    with pytest.raises(AdmissionError, match="refused VM 'a': it reserves 70% of a CPU but only 60%"):
        sched.set_params("a", reservation=70)
    assert sched.params["a"].reservation == 0
