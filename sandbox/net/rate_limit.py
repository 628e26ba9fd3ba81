"""A token bucket: the classic rate limiter (Firecracker's virtio-net, tc's tbf, OVS ingress policing).

Tokens are bytes. The bucket fills at ``rate`` bytes per second of guest time up to
``burst`` bytes; a frame passes if the bucket holds at least its size, and takes that
many tokens. Over any interval T at most ``burst + rate * T`` bytes pass: the limit
holds whatever the traffic looks like, and a quiet sender may send a short burst.
"""
from __future__ import annotations

NS_PER_S = 1_000_000_000
MIN_BURST = 2 * 1518                        # at least two full-size tagged frames


class TokenBucket:
    def __init__(self, rate_mbit: float, burst_bytes: int | None = None) -> None:
        self.rate_mbit = rate_mbit
        self.bytes_per_s = rate_mbit * 1_000_000 / 8
        # Default burst: 10 ms worth of traffic (tbf's usual rule of thumb), at least two frames.
        self.burst = burst_bytes if burst_bytes is not None else max(MIN_BURST, int(self.bytes_per_s / 100))
        self.tokens = float(self.burst)
        self.last_ns = 0
        self.passed = 0
        self.refused = 0

    def _refill(self, now_ns: int) -> None:
        if now_ns > self.last_ns:
            self.tokens = min(self.burst, self.tokens + (now_ns - self.last_ns) * self.bytes_per_s / NS_PER_S)
            self.last_ns = now_ns

    def allow(self, size: int, now_ns: int) -> bool:
        """May a frame of ``size`` bytes pass at guest time ``now_ns``? (Takes the tokens.)"""
        self._refill(now_ns)
        if self.tokens >= size:
            self.tokens -= size
            self.passed += 1
            return True
        self.refused += 1
        return False

    def state(self) -> dict[str, float]:
        return {"rate_mbit": self.rate_mbit, "burst_bytes": self.burst, "tokens": int(self.tokens),
                "passed": self.passed, "refused": self.refused}
