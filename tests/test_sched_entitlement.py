"""Entitlement by water-filling, and admission control, without running a guest."""
from __future__ import annotations

import pytest

from sandbox.hypervisor.admission import AdmissionError, admit
from sandbox.hypervisor.policies import POLICIES, SchedParams
from sandbox.hypervisor.policies.entitlement import VmDemand, water_fill


def test_water_fill_divides_by_weight():
    assert water_fill(100, {"a": (2, 0, 100), "b": (1, 0, 100), "c": (1, 0, 100)}) == \
        pytest.approx({"a": 50, "b": 25, "c": 25})


def test_water_fill_gives_what_a_vm_does_not_want_to_the_others():
    shares = water_fill(200, {"idle": (1000, 0, 5), "a": (1000, 0, 100), "b": (1000, 0, 100)})
    assert shares == pytest.approx({"idle": 5, "a": 97.5, "b": 97.5})


def test_water_fill_honours_low_and_high_bounds():
    shares = water_fill(100, {"reserved": (500, 60, 100), "x": (2000, 0, 100), "y": (2000, 0, 100)})
    assert shares == pytest.approx({"reserved": 60, "x": 20, "y": 20})
    assert water_fill(100, {"limited": (2000, 0, 20), "z": (1000, 0, 100)}) == pytest.approx({"limited": 20, "z": 80})


def vm(name, vcpus=1, demand=None, **params):
    return VmDemand(name, vcpus, SchedParams(**params), 100.0 * vcpus if demand is None else demand)


@pytest.mark.parametrize("policy, expected", [
    ("round_robin", {"smp": 200 / 3, "solo": 100 / 3}),
    ("proportional", {"smp": 100 / 3, "solo": 200 / 3}),
    ("credit", {"smp": 50, "solo": 50}),
])
def test_each_policy_has_its_own_idea_of_a_fair_share(policy, expected):
    vms = [vm("smp", vcpus=2, shares=2000), vm("solo", shares=4000)]
    assert POLICIES[policy]().entitlement(vms, 100.0) == pytest.approx(expected)


def test_credit_cap_and_proportional_limit_bound_the_entitlement():
    assert POLICIES["credit"]().entitlement([vm("c", cap=25.0), vm("d")], 100.0) == pytest.approx({"c": 25, "d": 75})
    assert POLICIES["proportional"]().entitlement([vm("l", limit=30.0)], 100.0) == pytest.approx({"l": 30})


def test_admission_fits_reservations_into_the_host():
    admit("c", 30, cpus=2, powered_on={"a": 70, "b": 100})          # exactly 200 %
    with pytest.raises(AdmissionError, match=r"refused VM 'c': it reserves 31% of a CPU but only 30% "
                                             r"of the host's 200% is unreserved \(reserved by: a 70%, b 100%\)"):
        admit("c", 31, cpus=2, powered_on={"a": 70, "b": 100})


def test_shares_levels_are_per_vcpu():
    from sandbox.config.model import VmConfig
    assert SchedParams.from_config(VmConfig(name="w", vcpus=2, cpu_shares="high")).shares == 4000
    assert SchedParams.from_config(VmConfig(name="w", vcpus=2, cpu_shares=3000)).shares == 3000
    assert SchedParams.from_config(VmConfig(name="w")).weight == 256
