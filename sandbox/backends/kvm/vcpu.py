"""A vCPU on KVM: the guest runs on the real CPU, the hypervisor sees exits as data.

``run()`` is the classic KVM loop: ioctl(KVM_RUN), read ``kvm_run.exit_reason``, serve
the exit, go again. Port I/O and MMIO are served right here through the host's
dispatcher (the guest instruction waits for the answer); every other exit becomes one
record of ``sandbox.vm.exits`` and ends ``run()``. The table ``EXIT_HANDLERS`` says what
each KVM exit means.

Interrupts: no in-kernel irqchip (KVM_CREATE_IRQCHIP) on purpose. With it, KVM would
model the PIC, IOAPIC and local APIC inside the kernel, deciding vectors and priorities
where the hypervisor (and the student) cannot see them, and the KVM backend would
behave differently from the Unicorn one. Without it, the hypervisor's own PIC model
decides which vector to deliver, exactly as on Unicorn, and KVM only injects it at the
next guest entry (KVM_INTERRUPT). The cost is an exit per interrupt, plus an
"interrupt window" exit when the guest has interrupts disabled at that moment.

On a paravirtual host (kvm_pvm) ``self.fallback`` (fallback.py) fills the gaps of that
host's instruction emulator: protected-mode ``int n``/``iret``, interrupt delivery to
32-bit guests, system calls from ring 3. With VT-x/AMD-V it is None.

The registers (get_regs, set_regs, mode switches, linear reads) are in registers.py;
they may be read and written only while ``run()`` is not executing (KVM holds a
vCPU lock during KVM_RUN), i.e. from the vCPU's own thread or while it is stopped.
"""
from __future__ import annotations

import collections
import ctypes
import errno
import os
import struct
import threading
from typing import Callable

from sandbox.backends.base import EFLAGS_IF, VCpuBackend, VCpuHost
from sandbox.backends.kvm import abi
from sandbox.backends.kvm.errors import KvmError
from sandbox.backends.kvm.fallback import NOT_MINE, PvmFallback
from sandbox.backends.kvm.kick import SLICE_TIMER, install_kick_handler, kick_thread
from sandbox.backends.kvm.registers import KvmRegisters
from sandbox.backends.kvm.vm import KvmVm
from sandbox.vm.exits import (BudgetExit, CrashExit, Exit, HltExit, IoExit, MmioExit, ShutdownExit,
                              StepExit, StopExit)

MASK32 = 0xFFFFFFFF
# struct kvm_run_io (direction, size, port, count, data_offset) where the exit union starts
IO_FIELDS = struct.Struct("<BBHIQ")
IO_OFFSET = abi.kvm_run.exit.offset
assert IO_FIELDS.size == ctypes.sizeof(abi.kvm_run_io)
IO_DATA = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I")}   # by access size


class KvmVCpu(KvmRegisters, VCpuBackend):
    engine = "kvm"
    deterministic = False        # KVM runs in wall-clock time: there is no instruction budget

    def __init__(self, host: VCpuHost, index: int) -> None:
        super().__init__(host, index)
        install_kick_handler()
        self.memory = host.memory
        self.vm = KvmVm.attach(self.memory)
        try:
            self.fd, self._page = self.vm.create_vcpu(index)
        except OSError as e:
            self.vm.release()
            raise KvmError(f"KVM_CREATE_VCPU {index} failed: {e.strerror}") from None
        self.kvm_run = abi.kvm_run.from_buffer(self._page)
        self._lock = threading.Lock()        # guards the fields a kick touches
        self._stop_requested = False
        self._slice_over = False
        self._slice_token = 0
        self._thread_id: int | None = None   # the thread inside run(), while it is
        self._pending_completion = False     # an I/O or MMIO exit KVM has not finished
        self._out_exit: tuple[int, int] | None = None   # (port, size) while serving an OUT
        self._out_eip: int | None = None
        self._stepping = False                # inside step(): the debugger's single step
        self._debugger_step = False          # KVM_SET_GUEST_DEBUG single-step asked by step()
        self._tally = [0] * 256               # KVM exits by reason number (see exit_counts)
        self._handlers = {reason: handler.__get__(self) for reason, (handler, _why) in EXIT_HANDLERS.items()}
        self.ram_faults = 0                  # MMIO exits that were RAM (copy-on-write etc.)
        # What kvm_pvm cannot do, done in Python (fallback.py). Off with VT-x/AMD-V.
        self.fallback = PvmFallback(self) if self.vm.paravirtual else None
        self.set_real_mode(0xF000, 0xFFF0)

    def set_real_mode(self, cs: int, ip: int) -> None:
        if self.fallback is not None:
            self.fallback.reset()
        super().set_real_mode(cs, ip)

    @property
    def exit_counts(self) -> collections.Counter[str]:
        """How many KVM exits of each kind this vCPU has seen, by name."""
        return collections.Counter({abi.EXIT_NAMES.get(reason, f"exit {reason}"): n
                                    for reason, n in enumerate(self._tally) if n})

    @property
    def host_limit(self) -> str | None:
        """Which kvm_pvm limit (pvm_limits.LIMITS) stopped the guest, if one did."""
        return self.fallback.host_limit if self.fallback is not None else None

    @property
    def stepping(self) -> bool:
        return self._stepping

    # --- VCpuBackend: running ----------------------------------------------------------------
    def run(self, budget: int | None, wall_timeout_us: int | None) -> Exit:
        """``budget`` is ignored: KVM cannot count guest instructions, it runs in wall-clock
        time. ``wall_timeout_us`` ends the slice with BudgetExit (a timer kicks the vCPU)."""
        self.vm.sync_if_stale()
        with self._lock:
            self._thread_id = threading.get_ident()
            self._slice_over = False
            self._slice_token += 1
            token = self._slice_token
        ticket = None
        if wall_timeout_us is not None:
            ticket = SLICE_TIMER.arm(wall_timeout_us / 1e6, lambda: self._end_slice(token))
        try:
            return self._finish(self._loop())
        finally:
            self._out_exit = None                # in case a device raised during an OUT
            if ticket is not None:
                ticket.cancel()
            with self._lock:
                self._thread_id = None

    def _loop(self) -> Exit:
        tally, handlers, run, fd = self._tally, self._handlers, self.kvm_run, self.fd
        while True:
            # The flags are set under the lock by kicks; reading a bool needs none, and a
            # kick that lands after this check makes KVM_RUN return at once (immediate_exit).
            if self._stop_requested or self._slice_over:
                with self._lock:
                    if self._stop_requested:
                        self._stop_requested = False
                        return StopExit()
                    return BudgetExit()
            try:
                abi.ioctl(fd, abi.KVM_RUN)
            except OSError as e:
                self._pending_completion = False   # KVM finished it before returning
                if e.errno == errno.EINTR:         # a kick (or any signal): see who asked
                    tally[abi.KVM_EXIT_INTR] += 1
                    self.kvm_run.immediate_exit = 0
                    continue
                if e.errno == errno.EAGAIN:
                    continue
                return CrashExit(f"KVM_RUN failed: {e.strerror}")
            self._pending_completion = False
            reason = run.exit_reason
            tally[reason & 0xFF] += 1
            handler = handlers.get(reason)
            result = handler() if handler else CrashExit(f"unexpected KVM exit {reason}")
            if result is not None:
                return result
            if self._stepping and self._pending_completion:
                return StepExit(address=-1)     # the instruction ends with its I/O (see step)

    def _finish(self, result: Exit) -> Exit:
        problem = self.complete_pending()
        return CrashExit(problem) if problem else result

    def complete_pending(self) -> str | None:
        """After an I/O or MMIO exit KVM completes the instruction (writes the IN value
        to EAX, advances EIP) only on the next KVM_RUN. Do that now, without running
        any guest code (immediate_exit), so the registers are right afterwards."""
        if not self._pending_completion:
            return None
        self.kvm_run.immediate_exit = 1
        try:
            abi.ioctl(self.fd, abi.KVM_RUN)
        except OSError as e:
            if e.errno != errno.EINTR:
                return f"KVM_RUN failed completing an I/O: {e.strerror}"
        finally:
            self.kvm_run.immediate_exit = 0
            self._pending_completion = False
        return None

    def _end_slice(self, token: int) -> None:
        """Runs on the slice timer's thread when the wall-clock slice is over."""
        with self._lock:
            if self._thread_id is None or token != self._slice_token:
                return                          # that run() already returned
            self._slice_over = True
            self.kvm_run.immediate_exit = 1
            kick_thread(self._thread_id)

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
            if self.kvm_run is not None:
                self.kvm_run.immediate_exit = 1  # if it is between two KVM_RUNs
            if self._thread_id is not None and self._thread_id != threading.get_ident():
                kick_thread(self._thread_id)    # if it is inside KVM_RUN now

    # --- the exits ------------------------------------------------------------------------------
    def _on_io(self) -> Exit | None:
        # kvm_run.exit.io, read in one go: every IN and OUT comes here, the hottest path.
        direction, size, port, count, at = IO_FIELDS.unpack_from(self._page, IO_OFFSET)
        self._pending_completion = True
        if count != 1:
            return self._on_string_io(direction == abi.KVM_EXIT_IO_OUT, size, port, count, at)
        data = IO_DATA[size]
        if direction == abi.KVM_EXIT_IO_OUT:
            self._out_exit, self._out_eip = (port, size), None   # get_regs() shows the OUT's EIP
            stop = self.host.handle_io(IoExit(port, size, True, data.unpack_from(self._page, at)[0]), self)
            self._out_exit = None
        else:
            ex = IoExit(port, size, False)
            stop = self.host.handle_io(ex, self)
            data.pack_into(self._page, at, ex.value & ((1 << 8 * size) - 1))
        return StopExit() if stop else None

    def _on_string_io(self, write: bool, size: int, port: int, count: int, data_offset: int) -> Exit | None:
        """rep insb/outsb and friends: ``count`` accesses, their data side by side in the page."""
        page, data, stop = self._page, IO_DATA[size], False
        for i in range(count):
            at = data_offset + i * size
            if write:
                stop |= bool(self.host.handle_io(IoExit(port, size, True, data.unpack_from(page, at)[0]), self))
            else:
                ex = IoExit(port, size, False)
                stop |= bool(self.host.handle_io(ex, self))
                data.pack_into(page, at, ex.value & ((1 << 8 * size) - 1))
        return StopExit() if stop else None

    def _on_mmio(self) -> Exit | None:
        mmio = self.kvm_run.exit.mmio
        gpa, length, write = mmio.phys_addr, mmio.len, bool(mmio.is_write)
        data = bytes(mmio.data[:length])
        self._pending_completion = True
        if self.memory.is_ram(gpa):           # a read-only (shared) page, or a slot in flux
            self.ram_faults += 1
            got = self.vm.ram_access(gpa, data if write else None, length)
            if not write:
                ctypes.memmove(mmio.data, got, length)
            return None
        ex = MmioExit(gpa, length, write, int.from_bytes(data, "little") if write else 0)
        stop = self.host.handle_mmio(ex, self)
        if not write:
            ctypes.memmove(mmio.data, (ex.value & ((1 << 8 * length) - 1)).to_bytes(length, "little"),
                           length)
        return StopExit() if stop else None

    def _on_hlt(self) -> Exit:
        return HltExit(interrupts_enabled=bool(self.kvm_run.if_flag))

    def _on_irq_window(self) -> Exit:
        self.kvm_run.request_interrupt_window = 0
        return StopExit()

    def _on_shutdown(self) -> Exit:
        self.host.publish("cpu.triple_fault", eip=self._regs().rip & MASK32)
        return self._crash("triple fault")

    def _on_fail_entry(self) -> Exit:
        fail = self.kvm_run.exit.fail_entry
        return CrashExit(f"KVM could not enter the guest: hardware entry failure reason "
                         f"{fail.hardware_entry_failure_reason:#x} on host cpu {fail.cpu}")

    def _on_internal_error(self) -> Exit | None:
        internal = self.kvm_run.exit.internal
        if internal.suberror == 1 and self._fault_in_missing_ram():
            return None                       # it was fetching from a page we had taken away
        where = self._where()
        if internal.suberror == 1 and self.fallback is not None:
            return self.fallback.emulation_failed(where)      # int n / iret (kvm_pvm)
        why = abi.INTERNAL_ERRORS.get(internal.suberror, f"suberror {internal.suberror}")
        return self._crash(f"KVM internal error at {where}: {why}")

    def _crash(self, reason: str) -> CrashExit:
        """A crash; on kvm_pvm the fallback says so when the host could not run the state."""
        return self.fallback.crash(reason) if self.fallback is not None else CrashExit(reason)

    def _on_system_event(self) -> Exit:
        kind = self.kvm_run.exit.system_event.type
        return SYSTEM_EVENTS.get(kind, lambda: ShutdownExit(f"system event {kind}"))()

    def _on_debug(self) -> Exit | None:
        if self.fallback is not None and not self._stepping:
            result = self.fallback.debug_exit()             # ring 3 watched on kvm_pvm
            if result is not NOT_MINE:
                return result
        return StepExit(address=self.kvm_run.exit.debug.pc & MASK32)

    def _on_intr(self) -> None:
        return None                           # a signal; the loop checks who asked

    def _where(self) -> str:
        regs, sregs = self._regs(), self._sregs()
        return f"{sregs.cs.selector:04x}:{regs.rip & MASK32:08x}"

    def _fault_in_missing_ram(self) -> bool:
        """KVM cannot fetch instructions from a guest page without a slot. If the memory
        manager took pages away (ballooning, swap), give them back and retry."""
        missing = [gfn for gfn, hfn in enumerate(self.memory.table) if hfn < 0]
        for gfn in missing:
            self.memory.frame_for(gfn, False)
        if missing:
            self.vm.sync()
        return bool(missing)

    # --- VCpuBackend: interrupts ---------------------------------------------------------------
    def can_take_interrupt(self) -> bool:
        """IF is set, no STI/MOV SS shadow, nothing injected yet. If not, ask KVM to exit
        (IRQ_WINDOW_OPEN) as soon as the guest can take one."""
        ready = bool(self._regs().rflags & EFLAGS_IF)
        if ready and self.vm.capabilities.get("KVM_CAP_VCPU_EVENTS"):
            events = abi.kvm_vcpu_events()
            abi.ioctl(self.fd, abi.KVM_GET_VCPU_EVENTS, events)
            ready = not (events.interrupt.shadow or events.interrupt.injected)
        self.kvm_run.request_interrupt_window = 0 if ready else 1
        return ready

    def interrupt(self, vector: int) -> None:
        """Queue ``vector``: KVM delivers it through the IVT/IDT on the next guest entry,
        as VT-x/AMD-V event injection does. On kvm_pvm a protected-mode guest gets it
        from the shared delivery code instead (fallback.py; ``TripleFault`` may
        propagate to the machine, as on Unicorn)."""
        self.kvm_run.request_interrupt_window = 0
        if self.fallback is not None and self.fallback.interrupt(vector):
            return
        try:
            abi.ioctl(self.fd, abi.KVM_INTERRUPT, abi.kvm_interrupt(irq=vector & 0xFF))
        except OSError as e:
            raise KvmError(f"KVM_INTERRUPT {vector:#x} refused: {e.strerror}") from None

    def step(self) -> Exit:
        """One guest instruction: KVM single-steps it (the trap flag, set and hidden by
        KVM_SET_GUEST_DEBUG) and exits with KVM_EXIT_DEBUG, which becomes StepExit.
        I/O inside the instruction is served as usual; HLT or a crash end it as usual."""
        if self.fallback is not None:
            done = self.fallback.before_debugger_step()     # an int n in ring 3 (kvm_pvm)
            if done is not None:
                self.retired += 1
                return done
        sregs = self._sregs()
        halts = self._read_linear(sregs, sregs.cs.base + self._regs().rip, 1) == b"\xf4"
        self.single_step(True)
        self._stepping = True
        try:
            result = self.run(None, None)
        finally:
            self._stepping = False
            self.single_step(False)
        self.retired += 1
        if isinstance(result, StepExit) and result.address < 0:
            # The stepped instruction did I/O. Completing it ends the step (KVM, having
            # emulated the instruction, does not always report the trap after an exit).
            regs, sregs = self._regs(), self._sregs()
            result = StepExit(address=(sregs.cs.base + regs.rip) & MASK32)
        if halts and isinstance(result, StepExit):  # the trap flag does not wait for HLT
            result = HltExit(interrupts_enabled=bool(self._regs().rflags & EFLAGS_IF))
        return result

    def single_step(self, enabled: bool) -> None:
        """Exit with StepExit after every guest instruction (KVM_SET_GUEST_DEBUG)."""
        self._debugger_step = enabled
        self.update_guest_debug()

    def update_guest_debug(self) -> None:
        """Single-step for the debugger, or while the fallback watches ring 3."""
        enabled = self._debugger_step or (self.fallback is not None and self.fallback.watching)
        debug = abi.kvm_guest_debug(
            control=(abi.KVM_GUESTDBG_ENABLE | abi.KVM_GUESTDBG_SINGLESTEP) if enabled else 0)
        abi.ioctl(self.fd, abi.KVM_SET_GUEST_DEBUG, debug)

    # --- memory ----------------------------------------------------------------------------
    def mappings_changed(self) -> None:
        self.vm.sync()

    def get_dirty_log(self) -> list[int]:
        """Guest frames written since the last call (the first call: all of them)."""
        return self.vm.get_dirty_log()

    def close(self) -> None:
        if self.kvm_run is None:
            return
        self.kvm_run = None                   # drop the ctypes view before unmapping
        self._page.close()
        os.close(self.fd)
        self.vm.release()


# KVM exit reason -> (handler, what it means). A handler returns an Exit to end run(),
# or None to go back into the guest.
EXIT_HANDLERS: dict[int, tuple[Callable[[KvmVCpu], Exit | None], str]] = {
    abi.KVM_EXIT_IO: (KvmVCpu._on_io, "IN/OUT: each access goes to the device bus, then the guest resumes"),
    abi.KVM_EXIT_MMIO: (KvmVCpu._on_mmio,
                        "an access where no writable slot is: device memory, or a shared page to copy"),
    abi.KVM_EXIT_HLT: (KvmVCpu._on_hlt, "HLT: the vCPU waits for an interrupt (or forever, if IF is clear)"),
    abi.KVM_EXIT_IRQ_WINDOW_OPEN: (KvmVCpu._on_irq_window,
                                   "the guest can take an interrupt now (we asked to be told)"),
    abi.KVM_EXIT_SHUTDOWN: (KvmVCpu._on_shutdown, "the CPU shut down: a triple fault"),
    abi.KVM_EXIT_FAIL_ENTRY: (KvmVCpu._on_fail_entry, "the hardware refused the guest state at VM entry"),
    abi.KVM_EXIT_INTERNAL_ERROR: (KvmVCpu._on_internal_error,
                                  "KVM could not go on, e.g. an instruction it cannot emulate "
                                  "(on kvm_pvm, int n / iret: done by fallback.py)"),
    abi.KVM_EXIT_SYSTEM_EVENT: (KvmVCpu._on_system_event, "the guest asked to power off or reset"),
    abi.KVM_EXIT_DEBUG: (KvmVCpu._on_debug, "single-step: for the debugger, or kvm_pvm's ring 3 "
                                            "watched by fallback.py"),
    abi.KVM_EXIT_INTR: (KvmVCpu._on_intr, "a signal interrupted KVM_RUN (a kick)"),
}

SYSTEM_EVENTS: dict[int, Callable[[], Exit]] = {
    abi.KVM_SYSTEM_EVENT_SHUTDOWN: lambda: ShutdownExit("the guest powered off (system event)"),
    abi.KVM_SYSTEM_EVENT_RESET: lambda: ShutdownExit("the guest asked for a reset (system event)"),
    abi.KVM_SYSTEM_EVENT_CRASH: lambda: CrashExit("the guest reported a crash (system event)"),
}
