"""Policies as plug-ins: a student's "module:Class" next to machine.toml. A plug-in that
raises or answers nonsense gets one clear error naming it, and the machine carries on
with round robin; one that cannot even be loaded is a config error."""
from __future__ import annotations

import pytest
from asm import needs_as
from test_sched_guests import HOG, build, cpu

from sandbox.cli.main import main
from sandbox.errors import ConfigError
from sandbox.events import EventRecorder

pytestmark = needs_as

MS = 1_000_000
TWO_HOGS = [{"name": "a", "guest": HOG}, {"name": "b", "guest": HOG}]


def with_plugin(tmp_path, source: str, vms=TWO_HOGS, spec="student:Policy"):
    (tmp_path / "student.py").write_text(source)
    return build(tmp_path, vms, scheduler=spec)


def run(m, ms):
    rec = EventRecorder(m.events, ["sched.policy_error"])
    m.power_on()
    outcome = m.run(until_ns=ms * MS)
    return outcome, rec.events


def test_a_students_duck_typed_policy_runs(tmp_path):
    m = with_plugin(tmp_path, """
class Policy:
    description = "least CPU so far goes next"
    def pick(self, pcpu, runnable, now_ns):
        return min(runnable, key=lambda c: (c.run_ns, c.name))
""")
    outcome, errors = run(m, 40)
    assert outcome == "time" and errors == []
    c = cpu(m)
    assert c["a"]["run_seconds"] == pytest.approx(0.02, abs=0.0011)
    assert m.report()["host"]["scheduler"]["policy"] == "student:Policy"


def test_a_policy_that_raises_falls_back_to_round_robin_with_a_clear_error(tmp_path):
    m = with_plugin(tmp_path, """
from sandbox.hypervisor.policies import SchedulingPolicy

class Policy(SchedulingPolicy):
    def pick(self, pcpu, runnable, now_ns):
        if now_ns > 5_000_000:
            return runnable[0] if 1 / 0 else None
        return runnable[0]
""")
    outcome, errors = run(m, 40)
    assert outcome == "time"
    [err] = errors
    assert err.data["policy"] == "student:Policy" and err.data["fallback"] == "round_robin"
    assert err.data["message"] == ("scheduling policy 'student:Policy' failed in pick(): "
                                   "ZeroDivisionError: division by zero (student.py line 7)")
    assert 5 * MS < err.time_ns <= 6 * MS                  # the first decision after 5 ms
    sched = m.report()["host"]["scheduler"]
    assert sched["policy"] == "round_robin" and sched["requested"] == "student:Policy"
    assert sched["policy_error"] == err.data["message"]
    c = cpu(m)                              # round robin shared the rest of the time
    assert c["b"]["run_seconds"] == pytest.approx(0.017, abs=0.0011)


@pytest.mark.parametrize("body, problem", [
    ("return 'a'", "pick(): returned 'a', which is not one of the 2 runnable vCPUs it was offered (a/vcpu0, b/vcpu0)"),
    ("return runnable[0].siblings", "pick(): returned (), which is not one of the 2 runnable vCPUs"),
    ("runnable[0].shares = 7", "pick(): AttributeError: VCpuInfo is read-only"),
])
def test_a_policy_that_returns_nonsense_falls_back(tmp_path, body, problem):
    m = with_plugin(tmp_path, f"""
class Policy:
    def pick(self, pcpu, runnable, now_ns):
        {body}
""")
    outcome, errors = run(m, 10)
    assert outcome == "time"
    assert problem in errors[0].data["message"]
    assert sum(c["run_seconds"] for c in cpu(m).values()) == pytest.approx(0.01, abs=1e-5)


def test_a_throttle_reason_that_is_not_one_falls_back(tmp_path):
    m = with_plugin(tmp_path, """
from sandbox.hypervisor.policies import RoundRobin

class Policy(RoundRobin):
    def throttled(self, vcpu, now_ns):
        return "tired"
""")
    _, errors = run(m, 5)
    assert errors[0].data["message"].endswith("failed in throttled(): returned 'tired'; expected None, "
                                              "'limit' or 'costop'")


def test_a_policy_that_never_picks_anything_is_stopped_after_one_second(tmp_path):
    m = with_plugin(tmp_path, """
class Policy:
    def pick(self, pcpu, runnable, now_ns):
        return None
""")
    outcome, errors = run(m, 1100)
    assert errors[0].data["message"].endswith("left every pCPU idle for 1 s while 2 vCPU(s) were runnable")
    assert errors[0].time_ns == 1000 * MS
    assert cpu(m)["a"]["run_seconds"] == pytest.approx(0.05, abs=0.0011)


@pytest.mark.parametrize("source, spec, message", [
    (None, "nosuch:Policy", "scheduler 'nosuch:Policy': no module 'nosuch' next to"),
    ("x = 1\n", "student:Policy", "scheduler 'student:Policy': module 'student' has no class 'Policy'"),
    ("class Policy:\n    pass\n", "student:Policy", "'Policy' is not a scheduling policy (it needs a "
                                                    "pick(pcpu, runnable, now_ns) method)"),
    ("def broken(:\n", "student:Policy", "importing it failed: SyntaxError"),
    ("class Policy:\n    def __init__(self):\n        raise ValueError('no')\n    def pick(self, *a):\n"
     "        pass\n", "student:Policy", "creating Policy() failed: ValueError: no (student.py line 3)"),
    (None, "fifo", "[host]: 'scheduler' = 'fifo' must be round_robin, proportional, credit or "
                   "\"module:Class\""),
])
def test_a_plugin_that_cannot_be_loaded_is_a_config_error(tmp_path, source, spec, message):
    if source is not None:
        (tmp_path / "student.py").write_text(source)
    with pytest.raises(ConfigError) as e:
        build(tmp_path, TWO_HOGS, scheduler=spec)
    assert message in str(e.value)


def test_the_cli_names_the_broken_policy_on_stderr(tmp_path, capsys):
    with_plugin(tmp_path, "class Policy:\n    def pick(self, pcpu, runnable, now_ns):\n        return 42\n").close()
    status = main(["run", str(tmp_path / "machine.toml"), "--for", "0.005", "--quiet"])
    assert status == 0
    err = capsys.readouterr().err
    assert "sandbox: scheduling policy 'student:Policy' failed in pick(): returned 42" in err
    assert err.rstrip().endswith("fell back to round robin")
