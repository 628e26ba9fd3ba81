"""Getting a vCPU thread out of KVM_RUN: a kick signal and a wall-clock slice timer.

While a thread is inside the KVM_RUN ioctl the guest runs and Python cannot touch it.
Two things make KVM_RUN return early (api.rst, "KVM_RUN" and "immediate_exit"):

- a signal delivered to that thread that has a handler: KVM_RUN returns EINTR
  (exit reason KVM_EXIT_INTR). The handler itself does nothing; the interruption is
  the point. A Python handler is installed for ``KICK_SIGNAL`` (SIGUSR1); Python can
  only install handlers from the main thread, so this happens when the first KVM vCPU
  is created there (or at import, which normally runs on the main thread).
- ``kvm_run.immediate_exit = 1``: the next KVM_RUN returns EINTR before entering the
  guest. This closes the race where the signal arrives just *before* the thread enters
  KVM_RUN (the signal would be handled in Python and then lost).

A kick is both: set immediate_exit, then ``pthread_kill`` the vCPU's thread.

Wall-clock slices use one helper thread for the whole process (``SliceTimer``): each
vCPU arms a deadline before KVM_RUN; when it passes, the helper kicks that vCPU. Why
not the alternatives: ``signal.setitimer`` is one timer per *process* and its signal
goes to whichever thread the kernel picks, so two vCPU threads could not each have
their own slice; ``timer_create`` with SIGEV_THREAD_ID would work per thread but needs
``struct sigevent`` and the thread's kernel tid through ctypes. One helper thread with a
heap of deadlines serves any number of vCPU threads in plain Python; its precision is
about 0.1 ms, which is fine for scheduler slices of a few milliseconds.
"""
from __future__ import annotations

import heapq
import itertools
import signal
import threading
import time
from typing import Callable

from sandbox.backends.kvm.errors import KvmError

KICK_SIGNAL = signal.SIGUSR1


def _ignore_kick(signum: int, frame: object) -> None:
    """The kick handler: nothing to do, interrupting KVM_RUN was the point."""


def install_kick_handler() -> None:
    """Make sure KICK_SIGNAL has a handler (SIG_DFL would kill the process, SIG_IGN
    would not interrupt KVM_RUN). Any existing Python handler is kept: it interrupts
    the ioctl just as well."""
    current = signal.getsignal(KICK_SIGNAL)
    if callable(current):
        return
    if threading.current_thread() is not threading.main_thread():
        raise KvmError(f"create the first KVM vCPU on the main thread: it installs the "
                       f"{KICK_SIGNAL.name} handler that lets the hypervisor stop a running vCPU")
    signal.signal(KICK_SIGNAL, _ignore_kick)


def kick_thread(thread_id: int) -> None:
    signal.pthread_kill(thread_id, KICK_SIGNAL)


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
                self._thread = threading.Thread(target=self._loop, name="kvm-slice-timer", daemon=True)
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

if threading.current_thread() is threading.main_thread():
    install_kick_handler()
