"""Lab 2: a scheduling policy that gives each VM CPU in proportion to its shares."""
from sandbox.hypervisor.policies.base import SchedulingPolicy


class FairPolicy(SchedulingPolicy):
    name = "fair"
    description = "CPU in proportion to shares (lab 2)."

    def __init__(self):
        # Your state, keyed by vcpu.name.
        pass

    def pick(self, pcpu, runnable, now_ns):
        # TODO: pick fairly. This always runs the first vCPU on offer: the others starve.
        return runnable[0]

    def account(self, vcpu, ran_ns, now_ns):
        # TODO: vcpu just ran for ran_ns nanoseconds.
        pass

    def wake(self, vcpu, now_ns):
        # TODO: vcpu was halted and is runnable again.
        pass
