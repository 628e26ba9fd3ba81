"""Lab 2: a scheduling policy that gives CPU in proportion to shares."""
import pytest

TOLERANCE = 4.0                                # percentage points
HOG = "burn=200000 sleep=0 reports=0"          # cpuhog that never idles
SLEEPER = "burn=20000 sleep=40 reports=0"      # computes briefly, then sleeps 40 ms


def near(got: dict, want: dict) -> list[str]:
    return [f"{vm} got {got[vm]:.1f}%, fair is {want[vm]:.1f}%" for vm in want
            if abs(got[vm] - want[vm]) > TOLERANCE]


@pytest.mark.points(1, hint="policy.py must define class FairPolicy with a pick method.")
def test_policy_loads(student_module):
    """policy.py defines FairPolicy, a scheduling policy."""
    cls = student_module("policy.py").FairPolicy
    assert callable(getattr(cls(), "pick", None))


@pytest.mark.points(3, hint="Equal shares: each of two hogs should get half the CPU.")
def test_equal_shares_split_evenly(run_policy):
    """Two hogs with equal shares each get 50% (within 4 points)."""
    got = run_policy({"a": (1000, HOG), "b": (1000, HOG)})
    problems = near(got, {"a": 50.0, "b": 50.0})
    assert not problems, "; ".join(problems)


@pytest.mark.points(4, hint="Charge each vCPU ran_ns divided by its shares; pick the least charged.")
def test_cpu_follows_shares(run_policy):
    """Shares 1000:2000:3000 give 16.7%, 33.3% and 50% (within 4 points)."""
    got = run_policy({"low": (1000, HOG), "mid": (2000, HOG), "high": (3000, HOG)})
    problems = near(got, {"low": 100 / 6, "mid": 100 / 3, "high": 50.0})
    assert not problems, "; ".join(problems)


@pytest.mark.points(2, hint="When one VM sleeps the other may use the whole CPU: never idle with work waiting.")
def test_work_conserving_with_a_sleeper(run_policy):
    """A hog next to a VM that mostly sleeps gets nearly all the CPU, and the sleeper still runs."""
    got = run_policy({"hog": (1000, HOG), "sleeper": (1000, SLEEPER)})
    idle = 100 - got["hog"] - got["sleeper"]
    assert idle < 5.0, f"the CPU was idle {idle:.1f}% of the time"
    assert got["sleeper"] > 0.5, "the sleeper never ran"
