"""A token bucket in guest time: the rate limiter of Firecracker's block device and the
IOPS/bandwidth limits of vSphere.

The bucket holds up to ``capacity`` tokens and refills at ``rate`` tokens per second.
A request costs tokens (1 for an IOPS limit, its bytes for a bandwidth limit) and may
start once the bucket holds them. A request bigger than the whole bucket may start
when the bucket is full and leaves it in debt, so nothing waits forever.
"""
from __future__ import annotations

import math

NS_PER_S = 1_000_000_000


class TokenBucket:
    def __init__(self, rate: float, burst_s: float = 0.05, min_capacity: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("a token bucket needs a positive rate")
        self.rate = float(rate)                              # tokens per second
        self.capacity = max(rate * burst_s, min_capacity)     # burst allowance
        self.tokens = self.capacity                           # starts full
        self.at_ns = 0                                        # when ``tokens`` was true

    def _level(self, now_ns: int) -> float:
        if now_ns <= self.at_ns:
            return self.tokens
        return min(self.capacity, self.tokens + (now_ns - self.at_ns) * self.rate / NS_PER_S)

    def ready_at(self, cost: float, now_ns: int) -> int:
        """The earliest guest time, not before ``now_ns``, at which ``cost`` may be taken."""
        need = min(cost, self.capacity)
        level = self._level(now_ns)
        if level >= need - 1e-9:
            return now_ns
        start = max(now_ns, self.at_ns)
        return start + math.ceil((need - level) * NS_PER_S / self.rate)

    def take(self, cost: float, now_ns: int) -> None:
        self.tokens = self._level(now_ns) - cost
        self.at_ns = max(self.at_ns, now_ns)
