"""Deterministic guest time for a Unicorn vCPU: count the guest instructions it retires.

In deterministic mode guest time is a count of retired guest instructions, so a run
must stop at the same point on every machine. ``emu_start(count=N)`` is no use: it
hooks every instruction (~15x slower) and does not say how far a run got when
something else stopped it. Instead a ``UC_HOOK_BLOCK`` hook counts whole translation
blocks (TBs, the straight-line runs of guest code Unicorn compiles at once)::

    clock = InstructionClock(uc)        # installs the hook on a Uc
    clock.arm(10_000)                   # stop after >= 10,000 more instructions
    uc.emu_start(pc, until)             # no count=, no timeout
    clock.retired, clock.expired        # total so far; True if the budget stopped it
    clock.disarm()                      # no budget: count only (fast mode)

The rules, identical on every run of the same guest code:

* A block is counted, in full, when it starts executing (its hook runs just before
  its first instruction). A block cut short by a fault, or by a store into its own
  code, is still counted in full, and what runs again afterwards is counted again.
  (An ``emu_stop`` from another hook, e.g. on ``out``, lets the block finish.)
* Once ``remaining`` has dropped to 0 or below, the hook of the *next* block stops
  the CPU before that block runs and does not count it: the run ends on a block
  boundary after ``budget`` to ``budget + (size of the last block - 1)`` instructions,
  and the PC is the first instruction of the block that did not run.
* A block's instruction count comes from Unicorn's own translation
  (``ctl_request_cache``), looked up once per (address, size): code rewritten at
  the same address gives a block of another size, hence a new entry.
* Pass ``emu_start`` an ``until`` the guest never executes (or one where a block
  starts): Unicorn ends a block early at ``until`` and counts its stop stub as one
  more instruction.

Two implementations with the same interface and the same counts: ``native`` (83 bytes
of x86-64 machine code, see ``icount_native``; x86-64 Linux hosts) and ``python`` (a
Python block hook, ~10 MIPS; everywhere else).
"""
from __future__ import annotations

import ctypes
import weakref

from unicorn import UC_HOOK_BLOCK, Uc
from unicorn.unicorn_py3.unicorn import uc_hook_h, uclib

from sandbox.backends.unicorn import icount_native as native
from sandbox.errors import SandboxError

FOREVER = (1 << 63) - 1     # "remaining" while disarmed: no run ever uses it up
MAX_INSN_BYTES = 15         # the longest x86 instruction
PYTHON_TABLE_LIMIT = 1 << 16  # the Python clock forgets all counts past this many


class ClockError(SandboxError):
    """The instruction clock cannot be set up as asked."""


class BlockClock:
    """What both implementations share. Their hooks keep only two numbers: ``remaining``
    (budget left; may go below 0 by part of a block) and ``expired``. ``retired`` is
    derived: what was retired before the last arm()/disarm(), plus what has been
    taken off ``remaining`` since."""
    kind = "abstract"
    remaining: int
    expired: bool

    def __init__(self, uc: Uc) -> None:
        self.uc = uc
        self.misses = 0              # blocks whose count had to be asked of Unicorn
        self._retired_before = 0     # retired when remaining was last set
        self._remaining_at_set = FOREVER

    @property
    def retired(self) -> int:
        """Guest instructions retired since the clock was installed."""
        return self._retired_before + (self._remaining_at_set - self.remaining)

    def arm(self, budget: int) -> None:
        """Before ``emu_start``: stop at the first block boundary once ``budget`` more
        instructions have been retired."""
        if budget < 1:
            raise ClockError(f"instruction budget must be at least 1, got {budget}")
        self._reload(budget)

    def disarm(self) -> None:
        """No budget: runs are not stopped, instructions are still counted."""
        self._reload(FOREVER)

    def stop_at_next_block(self) -> None:
        """Stop at the start of the next translation block, retired count intact.

        Used instead of ``uc_emu_stop`` from inside an I/O hook: stopping there cuts a
        ``rep ins``/``rep outs`` iteration in half (its data is dropped and the port is
        read again on resume); the block hook stops cleanly between instructions."""
        self._reload(0)
        self._set(0, expired=False)

    def account(self, counted: int, actual: int) -> None:
        """Correct the count after a run the block hook cannot measure exactly: a
        single step (``emu_start(count=1)``) ran ``actual`` instructions of a block the
        hook counted as ``counted``."""
        self._retired_before += actual - counted

    def _reload(self, remaining: int) -> None:
        self._retired_before = self.retired
        self._remaining_at_set = remaining
        self._set(remaining, expired=False)

    def block_icount(self, address: int, size: int) -> int:
        """Slow path: how many instructions the block at ``address`` (``size`` bytes)
        holds, from Unicorn's translation of it (cached now: it is about to run)."""
        self.misses += 1
        tb_pc, icount, tb_size = self.uc.ctl_request_cache(address)
        if tb_pc == address and tb_size == size:
            return icount
        if tb_pc == address and size < tb_size and size <= MAX_INSN_BYTES:
            # The block rewrote itself: Unicorn re-runs the writing instruction alone,
            # in a one-instruction block the lookup (which asks for a normal block)
            # cannot see.
            return 1
        raise ClockError(f"translation block at {address:#x} is {tb_size} bytes, "
                         f"the block hook saw {size}")

    def _set(self, remaining: int, expired: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Remove the hook and drop the compiled blocks that call it (full speed again).
        ``retired`` then stays where it was."""


class PythonInstructionClock(BlockClock):
    """The portable clock: the machine code's twin, as a Python ``UC_HOOK_BLOCK``."""
    kind = "python"

    def __init__(self, uc: Uc) -> None:
        super().__init__(uc)
        self.remaining = FOREVER
        self.expired = False
        self._counts: dict[tuple[int, int], int] = {}
        self._handle = uc.hook_add(UC_HOOK_BLOCK, self._on_block)
        uc.ctl_flush_tb()        # blocks compiled before the hook existed do not call it

    def _on_block(self, uc: Uc, address: int, size: int, _user_data) -> None:
        if self.remaining <= 0:                  # budget used up: this block must not run
            self.expired = True
            uc.emu_stop()
            return
        icount = self._counts.get((address, size))
        if icount is None:
            if len(self._counts) >= PYTHON_TABLE_LIMIT:   # endlessly new code: start over
                self._counts.clear()
            icount = self._counts[(address, size)] = self.block_icount(address, size)
        self.remaining -= icount

    def _set(self, remaining: int, expired: bool) -> None:
        self.remaining = remaining
        self.expired = expired

    def close(self) -> None:
        if self._handle is not None:
            self.uc.hook_del(self._handle)
            self._handle = None
            self.uc.ctl_flush_tb()


class NativeInstructionClock(BlockClock):
    """The fast clock: Unicorn calls machine code directly; Python only on a new block."""
    kind = "native"

    def __init__(self, uc: Uc) -> None:
        super().__init__(uc)
        self._state = native.ClockState()
        self._state.remaining = FOREVER
        self._state.emu_stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
        self._miss = native.MISS_CFUNC(self._on_miss)   # kept alive as long as the clock
        self._state.miss = ctypes.cast(self._miss, ctypes.c_void_p).value
        handle = uc_hook_h()
        err = uclib.uc_hook_add(uc._uch, ctypes.byref(handle), UC_HOOK_BLOCK,
                                ctypes.c_void_p(native.hook_address()),
                                ctypes.c_void_p(ctypes.addressof(self._state)),
                                ctypes.c_uint64(1), ctypes.c_uint64(0))
        if err:
            raise ClockError(f"uc_hook_add of the native block hook failed (error {err})")
        # Unicorn holds a raw pointer to _state: the hook must go before the state does,
        # also when the clock is simply dropped. (The finalizer keeps _state, not self.)
        self._remove = weakref.finalize(self, _remove_native_hook, uc, handle, self._state)
        uc.ctl_flush_tb()        # blocks compiled before the hook existed do not call it

    def _on_miss(self, _uc, address: int, size: int, _state) -> int:
        """Called by the machine code for a block not in its table: count the block,
        put it in way 0 of its set (way 0's previous block moves to way 1), return it."""
        try:
            icount = self.block_icount(address, size)
        except BaseException as exc:  # noqa: BLE001 - an exception must not unwind into C
            # As the binding does for its own hooks: stop, emu_start() raises it after.
            if getattr(self.uc, "_hook_exception", None) is None:
                self.uc._hook_exception = exc
            self.uc.emu_stop()       # so the block will not run: it counts as 0
            return 0
        table = self._state.table
        way0 = 2 * native.set_index(address)
        table[way0 + 1] = table[way0]             # copies the 16 bytes
        table[way0].address, table[way0].size, table[way0].icount = address, size, icount
        return icount

    @property
    def remaining(self) -> int:
        return self._state.remaining

    @property
    def expired(self) -> bool:
        return bool(self._state.expired)

    def _set(self, remaining: int, expired: bool) -> None:
        self._state.remaining = remaining
        self._state.expired = int(expired)

    def close(self) -> None:
        self._remove()


def _remove_native_hook(uc: Uc, handle, _state) -> None:
    uclib.uc_hook_del(uc._uch, handle)
    uc.ctl_flush_tb()            # compiled blocks would still call into Unicorn's hook list


# kind -> (implementation, can this host run it?)
KINDS = {
    "native": (NativeInstructionClock, lambda: native.native_supported()),
    "python": (PythonInstructionClock, lambda: True),
}


def InstructionClock(uc: Uc, kind: str | None = None) -> BlockClock:  # noqa: N802
    """Install an instruction clock on ``uc``: ``native`` where the host can run it,
    else ``python``; ``kind`` forces one."""
    if kind is None:
        kind = "native" if native.native_supported() else "python"
    if kind not in KINDS:
        raise ClockError(f"unknown instruction clock kind {kind!r} "
                         f"(known: {', '.join(KINDS)})")
    implementation, host_can_run = KINDS[kind]
    if not host_can_run():
        raise ClockError(f"the {kind} instruction clock needs an x86-64 Linux host")
    return implementation(uc)
