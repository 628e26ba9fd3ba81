"""The safety net around a policy: a policy that raises, or answers something the
scheduler cannot use, becomes one ``PolicyFailure`` that names the policy, the method
and the problem. The scheduler then publishes ``sched.policy_error`` and carries on
with round robin, so a broken lab solution never hangs or crashes the machine.
"""
from __future__ import annotations

from typing import Any

from sandbox.errors import SandboxError
from sandbox.hypervisor.policies.base import THROTTLE_REASONS, HostInfo, SchedulingPolicy, VCpuInfo
from sandbox.hypervisor.policies.entitlement import VmDemand
from sandbox.hypervisor.policies.plugin import _where


OPTIONAL = ("account", "block", "wake", "throttled", "slice_ns", "describe")


class PolicyFailure(SandboxError):
    """A scheduling policy raised an exception or returned nonsense."""

    def __init__(self, policy: str, method: str, problem: str) -> None:
        super().__init__(f"scheduling policy '{policy}' failed in {method}(): {problem}")
        self.policy = policy
        self.method = method
        self.problem = problem


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class GuardedPolicy:
    """Calls a policy's methods; checks every answer."""

    def __init__(self, policy: Any, label: str) -> None:
        self.policy = policy
        self.label = label
        self.description = getattr(policy, "description", "") or ""
        self.honours = tuple(getattr(policy, "honours", ()) or ())
        # Optional methods the policy does not have (or inherits unchanged) are not called.
        absent = {m for m in OPTIONAL if getattr(type(policy), m, None) in (None, getattr(SchedulingPolicy, m))}
        self._methods = {m: getattr(policy, m) for m in ("pick", "setup", "entitlement") + OPTIONAL
                         if m not in absent and callable(getattr(policy, m, None))}

    def has(self, method: str) -> bool:
        """Does the policy implement this optional method?"""
        return method in self._methods

    def _call(self, method: str, *args: Any) -> Any:
        fn = self._methods.get(method)
        if fn is None:
            return None
        try:
            return fn(*args)
        except Exception as e:  # noqa: BLE001 - a student's bug becomes one clear line
            raise PolicyFailure(self.label, method, f"{type(e).__name__}: {e}{_where(e)}") from None

    def setup(self, host: HostInfo) -> None:
        self._call("setup", host)

    def pick(self, pcpu: int, runnable: list[VCpuInfo], now_ns: int) -> VCpuInfo | None:
        choice = self._call("pick", pcpu, list(runnable), now_ns)
        if choice is None:
            return None
        for c in runnable:
            if c is choice:
                return c
        names = ", ".join(c.name for c in runnable[:4]) + (", ..." if len(runnable) > 4 else "")
        raise PolicyFailure(self.label, "pick", f"returned {_short(choice)}, which is not one of the "
                            f"{len(runnable)} runnable vCPUs it was offered ({names})")

    def account(self, vcpu: VCpuInfo, ran_ns: int, now_ns: int) -> None:
        self._call("account", vcpu, ran_ns, now_ns)

    def block(self, vcpu: VCpuInfo, now_ns: int) -> None:
        self._call("block", vcpu, now_ns)

    def wake(self, vcpu: VCpuInfo, now_ns: int) -> None:
        self._call("wake", vcpu, now_ns)

    def throttled(self, vcpu: VCpuInfo, now_ns: int) -> str | None:
        reason = self._call("throttled", vcpu, now_ns)
        if reason is None or reason in THROTTLE_REASONS:
            return reason
        raise PolicyFailure(self.label, "throttled", f"returned {_short(reason)}; expected None, "
                            f"'limit' or 'costop'")

    def slice_ns(self, vcpu: VCpuInfo, now_ns: int) -> int | None:
        length = self._call("slice_ns", vcpu, now_ns)
        if length is None:
            return None
        if isinstance(length, bool) or not isinstance(length, (int, float)) or length < 1:
            raise PolicyFailure(self.label, "slice_ns", f"returned {_short(length)}; expected None or a "
                                f"number of nanoseconds >= 1 (hold a vCPU back with throttled())")
        return int(length)

    def describe(self, vcpu: VCpuInfo) -> dict[str, Any]:
        info = self._call("describe", vcpu)
        if info is None:
            return {}
        if not isinstance(info, dict):
            raise PolicyFailure(self.label, "describe", f"returned {_short(info)}; expected a dict")
        return info

    def entitlement(self, vms: list[VmDemand], capacity: float) -> dict[str, float] | None:
        shares = self._call("entitlement", vms, capacity)
        if shares is None:
            return None
        if not isinstance(shares, dict) or not all(isinstance(v, (int, float)) for v in shares.values()):
            raise PolicyFailure(self.label, "entitlement", f"returned {_short(shares)}; expected "
                                f"{{vm name: percent of one pCPU}}")
        return {str(k): float(v) for k, v in shares.items()}
