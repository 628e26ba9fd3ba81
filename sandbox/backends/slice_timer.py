"""Wall-clock time slices: one helper thread that fires callbacks at deadlines.

Fast mode (and KVM, which always runs in wall-clock time) gives each vCPU a slice of
real time: the vCPU arms a deadline before entering the engine; when it passes, this
thread stops that vCPU (Unicorn: ``emu_stop``; KVM: a kick). One thread with a heap of
deadlines serves any number of vCPU threads; its precision is about 0.1 ms, fine for
slices of a few milliseconds. (Unicorn's own ``timeout=`` starts a new thread on every
``emu_start``, which costs more than the slice is worth at 1 ms.)
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable


class SliceTimer:
    """One helper thread that calls ``fire()`` callbacks at their deadlines."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, "Ticket"]] = []
        self._cond = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fire: Callable[[], None]) -> "Ticket":
        ticket = Ticket(fire)
        with self._cond:
            entry = (time.monotonic() + seconds, next(self._seq), ticket)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="slice-timer", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:
                self._cond.notify()
        return ticket

    def _loop(self) -> None:
        with self._cond:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                _deadline, _seq, ticket = heapq.heappop(self._heap)
                if not ticket.cancelled:
                    ticket.cancelled = True
                    ticket.fire()


class Ticket:
    """An armed deadline; ``cancel()`` is cheap (the helper drops it lazily)."""
    __slots__ = ("fire", "cancelled")

    def __init__(self, fire: Callable[[], None]) -> None:
        self.fire = fire
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


SLICE_TIMER = SliceTimer()
