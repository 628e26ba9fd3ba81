"""Lab 2 reference solution: stride scheduling (Waldspurger and Weihl, 1995)."""
from sandbox.hypervisor.policies.base import SchedulingPolicy


class FairPolicy(SchedulingPolicy):
    name = "fair"
    description = "Stride scheduling: the vCPU with the least virtual time runs next."

    def __init__(self):
        self.vtime = {}          # vcpu name -> CPU received, in ns per share
        self.floor = 0.0         # the smallest virtual time among the runnable at the last pick

    def _vtime(self, vcpu):
        return self.vtime.setdefault(vcpu.name, self.floor)

    def pick(self, pcpu, runnable, now_ns):
        choice = min(runnable, key=lambda c: (self._vtime(c), c.name))
        self.floor = self._vtime(choice)
        return choice

    def account(self, vcpu, ran_ns, now_ns):
        per_vcpu = max(vcpu.params.shares / vcpu.vcpus, 1)
        self.vtime[vcpu.name] = self._vtime(vcpu) + ran_ns / per_vcpu

    def wake(self, vcpu, now_ns):
        # A sleeper does not bank CPU for later: it rejoins at the front, not ahead of it.
        self.vtime[vcpu.name] = max(self._vtime(vcpu), self.floor)
