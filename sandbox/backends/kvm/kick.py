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

import signal
import threading

from sandbox.backends.kvm.errors import KvmError
from sandbox.backends.slice_timer import SLICE_TIMER  # noqa: F401  (the vCPU arms its slices here)

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


if threading.current_thread() is threading.main_thread():
    install_kick_handler()
