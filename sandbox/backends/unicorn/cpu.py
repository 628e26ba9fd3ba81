"""A vCPU on Unicorn: guest code runs in QEMU's TCG, the hypervisor sees exits as data.

Memory: the whole host frame pool is mapped once into the engine at physical address
0 (``mem_map_ptr``); the engine runs in virtual-TLB mode and asks ``_on_tlb_fill`` for
every page it has not cached yet. That hook is our software MMU: guest paging (if on)
turns the linear address into a guest-physical one, then the VM's frame table gives
the host frame, allocating it on first touch or breaking a share on a write. Anything
that is not RAM is mapped to a single MMIO window whose offset *is* the guest-physical
address, so device memory and open bus go through the MMIO bus.
"""
from __future__ import annotations

import threading

from unicorn import (UC_ARCH_X86, UC_CTL_IO_WRITE, UC_CTL_TLB_FLUSH, UC_ERR_EXCEPTION, UC_ERR_FETCH_UNMAPPED, UC_ERR_INSN_INVALID,
                     UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_TLB_FILL, UC_MEM_FETCH, UC_MEM_WRITE,
                     UC_MODE_32, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, UC_PROT_WRITE,
                     UC_TLB_VIRTUAL, Uc, UcError)
from unicorn import x86_const as X

from sandbox.backends.base import CR0_PE, CR0_PG, CR0_WP, EFLAGS_IF, FlatProtectedMode, VCpuBackend, VCpuHost
from sandbox.backends.slice_timer import SLICE_TIMER
from sandbox.vm import interrupt_delivery as interrupts   # architectural delivery, shared with KVM
from sandbox.backends.unicorn.fault_address import fault_address
from sandbox.backends.unicorn.registers import RegisterFile
from sandbox.backends.unicorn.icount import InstructionClock
from sandbox.host.ram import PAGE, PAGE_SHIFT
from sandbox.vm.descriptors import Segment, parse_segment
from sandbox.vm.exits import BudgetExit, CrashExit, Exit, HltExit, IoExit, MmioExit, StepExit, StopExit
from sandbox.vm.memory import NOT_PRESENT
from sandbox.vm.paging import PF_FETCH, PF_PRESENT, PF_USER, PF_WRITE, PageFault, walk

MMIO_WINDOW = 1 << 32           # engine-physical base of the 4 GiB MMIO window
NO_UNTIL = 0                    # ignored: the engine runs with an empty exit list

_REG = {
    "eax": X.UC_X86_REG_EAX, "ebx": X.UC_X86_REG_EBX, "ecx": X.UC_X86_REG_ECX,
    "edx": X.UC_X86_REG_EDX, "esi": X.UC_X86_REG_ESI, "edi": X.UC_X86_REG_EDI,
    "ebp": X.UC_X86_REG_EBP, "esp": X.UC_X86_REG_ESP, "eip": X.UC_X86_REG_EIP,
    "eflags": X.UC_X86_REG_EFLAGS, "cs": X.UC_X86_REG_CS, "ds": X.UC_X86_REG_DS,
    "es": X.UC_X86_REG_ES, "fs": X.UC_X86_REG_FS, "gs": X.UC_X86_REG_GS, "ss": X.UC_X86_REG_SS,
    "cr0": X.UC_X86_REG_CR0, "cr2": X.UC_X86_REG_CR2, "cr3": X.UC_X86_REG_CR3, "cr4": X.UC_X86_REG_CR4,
}
_SEGS = ("ds", "es", "fs", "gs", "ss")


class UnicornVCpu(VCpuBackend):
    engine = "unicorn"
    deterministic = True

    def __init__(self, host: VCpuHost, index: int) -> None:
        super().__init__(host, index)
        mem = host.memory
        self.memory = mem
        uc = self.uc = Uc(UC_ARCH_X86, UC_MODE_32)
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
        # No "until" address: emu_start would translate its page (a spurious TLB fill
        # that can page-fault the guest). An empty exit list means "run until stopped".
        uc.ctl_exits_enabled(True)
        uc.ctl_set_exits([])
        uc.mem_map_ptr(0, mem.pool.frames * PAGE, UC_PROT_ALL, mem.pool.address)
        uc.mmio_map(MMIO_WINDOW, 1 << 32, self._on_mmio_read, None, self._on_mmio_write, None)
        uc.hook_add(UC_HOOK_TLB_FILL, self._on_tlb_fill)
        uc.hook_add(UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)
        uc.hook_add(UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
        uc.hook_add(UC_HOOK_INTR, self._on_interrupt)
        self.clock = InstructionClock(uc)
        self._regfile = RegisterFile(uc, _REG)
        self._lock = threading.Lock()
        self._stop_requested = False
        self._wall_slice_over = False
        self._hook_stop = False
        self._pending_vector: int | None = None    # int n / CPU exception seen by the hook
        self._pending_fault: PageFault | None = None
        self._pending_crash: str | None = None
        self._seen_generation = mem.generation

    # --- registers ------------------------------------------------------------------
    def get_regs(self) -> dict[str, int]:
        return self._regfile.read()

    def set_regs(self, **regs: int) -> None:
        for name, value in regs.items():
            self.uc.reg_write(_REG[name], value)

    def set_real_mode(self, cs: int, ip: int) -> None:
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_CR0, uc.reg_read(X.UC_X86_REG_CR0) & ~(CR0_PE | CR0_PG))
        for seg in _SEGS:
            uc.reg_write(_REG[seg], 0)
        uc.reg_write(X.UC_X86_REG_IDTR, (0, 0, 0x3FF, 0))
        uc.reg_write(X.UC_X86_REG_EFLAGS, 0x2)
        self.load_real_mode_cs(cs, ip)

    def enter_flat_protected_mode(self, pm: FlatProtectedMode, eip: int) -> None:
        uc = self.uc
        uc.reg_write(X.UC_X86_REG_GDTR, (0, pm.gdt_base, pm.gdt_limit, 0))
        uc.reg_write(X.UC_X86_REG_CR0, (uc.reg_read(X.UC_X86_REG_CR0) | CR0_PE | 0x10) & ~CR0_PG)
        self.load_ring0_stack(pm.data, uc.reg_read(X.UC_X86_REG_ESP))
        for seg in ("ds", "es", "fs", "gs"):
            uc.reg_write(_REG[seg], pm.data)
        uc.reg_write(X.UC_X86_REG_EFLAGS, 0x2)
        self.load_protected_cs(pm.code, eip)

    # --- helpers for interrupt delivery (sandbox/vm/interrupt_delivery.py) and the firmware ----------------
    def idtr(self) -> tuple[int, int]:
        _sel, base, limit, _flags = self.uc.reg_read(X.UC_X86_REG_IDTR)
        return base, limit

    def load_real_mode_cs(self, cs: int, ip: int) -> None:
        self.uc.reg_write(X.UC_X86_REG_CS, cs)
        self.uc.reg_write(X.UC_X86_REG_EIP, ip)

    def load_protected_cs(self, selector: int, eip: int) -> None:
        self.uc.reg_write(X.UC_X86_REG_CS, selector)
        self.uc.reg_write(X.UC_X86_REG_EIP, eip)

    def load_ring0_stack(self, ss: int, esp: int) -> None:
        """Load a ring-0 SS from any privilege level.

        The engine refuses to load an SS whose RPL differs from the current CPL, and
        it takes the CPL from SS. A brief detour through real mode (where any SS is
        accepted and the CPL becomes 0) lets the hypervisor switch stacks as the CPU
        does during an interrupt from ring 3."""
        uc = self.uc
        cr0 = uc.reg_read(X.UC_X86_REG_CR0)
        if cr0 & CR0_PE and (uc.reg_read(X.UC_X86_REG_SS) & 3 or uc.reg_read(X.UC_X86_REG_CS) & 3):
            uc.reg_write(X.UC_X86_REG_CR0, cr0 & ~(CR0_PE | CR0_PG))
            uc.reg_write(X.UC_X86_REG_SS, 0)
            uc.reg_write(X.UC_X86_REG_CR0, cr0)
        uc.reg_write(X.UC_X86_REG_SS, ss)
        uc.reg_write(X.UC_X86_REG_ESP, esp)

    def read_segment_descriptor(self, selector: int) -> Segment | None:
        if selector & ~3 == 0:
            return None
        if selector & 4:   # LDT
            _s, base, limit, _f = self.uc.reg_read(X.UC_X86_REG_LDTR)
        else:
            _s, base, limit, _f = self.uc.reg_read(X.UC_X86_REG_GDTR)
        index = selector & ~7
        if index + 7 > limit:
            return None
        return parse_segment(self.read_linear(base + index, 8))

    def tss_stack(self, cpl: int, size: int) -> tuple[int, int]:
        _sel, base, _limit, _flags = self.uc.reg_read(X.UC_X86_REG_TR)
        if size == 4:
            raw = self.read_linear(base + 4 + cpl * 8, 8)
            return int.from_bytes(raw[4:6], "little"), int.from_bytes(raw[:4], "little")
        raw = self.read_linear(base + 2 + cpl * 4, 4)
        return int.from_bytes(raw[2:4], "little"), int.from_bytes(raw[:2], "little")

    def translate(self, linear: int, write: bool = False, supervisor: bool = True) -> int:
        """Linear -> guest-physical, through the guest's page tables when paging is on."""
        uc = self.uc
        cr0 = uc.reg_read(X.UC_X86_REG_CR0)
        if not cr0 & CR0_PG:
            return self.memory.mask(linear & 0xFFFFFFFF)
        t = walk(self.memory, uc.reg_read(X.UC_X86_REG_CR3), uc.reg_read(X.UC_X86_REG_CR4),
                 linear & 0xFFFFFFFF, write=write, user=not supervisor, wp=bool(cr0 & CR0_WP))
        return t.gpa | (linear & (PAGE - 1))

    def read_linear(self, linear: int, length: int) -> bytes:
        out = bytearray()
        while length:
            n = min(length, PAGE - (linear & (PAGE - 1)))
            out += self.memory.read(self.translate(linear), n)
            linear += n
            length -= n
        return bytes(out)

    def write_linear(self, linear: int, data: bytes, supervisor: bool = True) -> None:
        pos = 0
        while pos < len(data):
            n = min(len(data) - pos, PAGE - (linear & (PAGE - 1)))
            self.memory.write(self.translate(linear, write=True, supervisor=supervisor), data[pos:pos + n])
            linear += n
            pos += n

    def linear_pc(self) -> int:
        uc = self.uc
        cs = uc.reg_read(X.UC_X86_REG_CS)
        eip = uc.reg_read(X.UC_X86_REG_EIP)
        if not uc.reg_read(X.UC_X86_REG_CR0) & CR0_PE:
            return (cs << 4) + (eip & 0xFFFF)
        seg = self.read_segment_descriptor(cs)
        return ((seg.base if seg else 0) + eip) & 0xFFFFFFFF

    # --- running --------------------------------------------------------------------------
    def run(self, budget: int | None, wall_timeout_us: int | None) -> Exit:
        clock = self.clock
        start = clock.retired
        if self._seen_generation != self.memory.generation:
            self.mappings_changed()
        while True:
            with self._lock:
                if self._stop_requested:
                    self._stop_requested = False
                    return StopExit()
            if budget is not None:
                remaining = budget - (clock.retired - start)
                if remaining <= 0:
                    return BudgetExit()
                clock.arm(remaining)
            else:
                clock.disarm()
            self._pending_vector = self._pending_fault = self._pending_crash = None
            self._hook_stop = self._wall_slice_over = False
            error: UcError | None = None
            ticket = SLICE_TIMER.arm(wall_timeout_us / 1e6, self._slice_over) if wall_timeout_us else None
            try:
                # In 32-bit mode Unicorn takes ``begin`` as the new EIP (an offset in
                # CS, whatever the CPU mode); in its 16-bit mode it would subtract
                # CS*16 even in protected mode, so the engine is always created 32-bit.
                self.uc.emu_start(self.uc.reg_read(X.UC_X86_REG_EIP), NO_UNTIL)
            except UcError as e:
                error = e
            finally:
                if ticket is not None:
                    ticket.cancel()
            self.retired = clock.retired
            outcome = self._after_run(error, budget is not None, wall_timeout_us)
            if outcome is not None:
                return outcome

    def step(self) -> Exit:
        """One instruction, with Unicorn's instruction counter (slow, exact)."""
        before = self.clock.retired
        self._pending_vector = self._pending_fault = self._pending_crash = None
        self._hook_stop = False
        self.clock.disarm()
        # Code translated for normal runs has no instruction counter in it (and chained
        # blocks never return to the engine's loop): drop it so count=1 really stops.
        self.uc.ctl_flush_tb()
        error: UcError | None = None
        try:
            self.uc.emu_start(self.uc.reg_read(X.UC_X86_REG_EIP), NO_UNTIL, 0, 1)
        except UcError as e:
            error = e
        self.uc.ctl_flush_tb()            # and no counting code left behind for full-speed runs
        self.clock.account(self.clock.retired - before, 1)
        self.retired = self.clock.retired
        outcome = self._after_run(error, False, None)
        if isinstance(outcome, BudgetExit) or outcome is None:
            return StepExit(self.linear_pc(), "step")
        return outcome

    def _after_run(self, error: UcError | None, budgeted: bool, wall: int | None) -> Exit | None:
        """Decide what ended emu_start. None means: keep running (an interrupt was delivered)."""
        try:
            if self._pending_crash is not None:
                return CrashExit(self._pending_crash)
            if self._pending_fault is not None:
                pf = self._pending_fault
                self.uc.reg_write(X.UC_X86_REG_CR2, fault_address(self, pf.linear))
                self._fault(14, pf.error_code)
                return None
            if self._pending_vector is not None:
                vector, software = self._pending_vector
                self._fault(vector, 0 if not software else None, software)
                return None
            if error is not None:
                if error.errno == UC_ERR_INSN_INVALID:
                    self._fault(6)
                    return None
                if error.errno == UC_ERR_FETCH_UNMAPPED:
                    return CrashExit(f"executing from device memory or unmapped memory at {self.linear_pc():#x}")
                if error.errno == UC_ERR_EXCEPTION:
                    return CrashExit(f"emulation error at {self.linear_pc():#x}: unhandled CPU exception")
                return CrashExit(f"emulation error at {self.linear_pc():#x}: {error}")
        except interrupts.TripleFault as tf:
            return CrashExit(str(tf))
        if self._hook_stop:
            return StopExit()
        with self._lock:
            if self._stop_requested:
                self._stop_requested = False
                return StopExit()
        if budgeted and self.clock.expired:
            return BudgetExit()
        if self._wall_slice_over:
            return BudgetExit()
        if self._at_hlt():
            return HltExit(bool(self.uc.reg_read(X.UC_X86_REG_EFLAGS) & EFLAGS_IF))
        return BudgetExit()

    def _fault(self, vector: int, error_code: int | None = None, software: bool = False) -> None:
        kind = "irq.deliver" if software else "cpu.fault"
        if software is False or self.host.traced(kind):
            self.host.publish(kind, vector=vector, error_code=error_code,
                              eip=self.uc.reg_read(X.UC_X86_REG_EIP), software=software)
        interrupts.deliver(self, vector, error_code, software)

    def _at_hlt(self) -> bool:
        try:
            return self.read_linear(self.linear_pc() - 1, 1) == b"\xf4"
        except PageFault:
            return False

    def can_take_interrupt(self) -> bool:
        """IF is set and we are not in STI's interrupt shadow: after ``sti`` the CPU
        executes one more instruction before it takes an interrupt, which is what makes
        ``sti; hlt`` sleep safely. Unicorn does not expose the shadow, so the byte
        before EIP is checked (a false positive only delays delivery a little)."""
        if not self.uc.reg_read(X.UC_X86_REG_EFLAGS) & EFLAGS_IF:
            return False
        try:
            return self.read_linear(self.linear_pc() - 1, 1) != b"\xfb"
        except PageFault:
            return True

    def interrupt(self, vector: int) -> None:
        if self._seen_generation != self.memory.generation:
            self.mappings_changed()       # delivery reads the IDT/GDT through the TLB
        interrupts.deliver(self, vector)

    def _slice_over(self) -> None:
        """Called by the slice timer's thread when a wall-clock slice ends."""
        self._wall_slice_over = True
        self.uc.emu_stop()

    def request_stop(self) -> None:
        with self._lock:
            self._stop_requested = True
        self.uc.emu_stop()

    def mappings_changed(self) -> None:
        """Forget cached translations (the binding has no ctl_flush_tlb: use the control).
        Safe from inside TLB-fill and I/O hooks; takes effect at the next access."""
        self._seen_generation = self.memory.generation
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    def close(self) -> None:
        self.uc = None  # type: ignore[assignment]

    # --- hooks (run inside emu_start) --------------------------------------------------------
    def _on_tlb_fill(self, uc: Uc, vaddr: int, access: int, entry, _data) -> bool:
        write = access == UC_MEM_WRITE
        linear = vaddr & 0xFFFFFFFF
        perms = UC_PROT_ALL
        cr0 = uc.reg_read(X.UC_X86_REG_CR0)
        if cr0 & CR0_PG:
            user = (uc.reg_read(X.UC_X86_REG_CS) & 3) == 3
            try:
                t = walk(self.memory, uc.reg_read(X.UC_X86_REG_CR3), uc.reg_read(X.UC_X86_REG_CR4),
                         linear, write=write, user=user, fetch=access == UC_MEM_FETCH, wp=bool(cr0 & CR0_WP))
            except PageFault as pf:
                self._pending_fault = pf
                return False
            except NotImplementedError as e:
                self._pending_crash = str(e)
                return False
            gpa = t.gpa
            if not t.writable:
                perms &= ~UC_PROT_WRITE
        else:
            gpa = linear & ~(PAGE - 1)
        gpa = self.memory.mask(gpa)
        hfn = self.memory.frame_for(gpa >> PAGE_SHIFT, write and bool(perms & UC_PROT_WRITE))
        if hfn == NOT_PRESENT:
            if access == UC_MEM_FETCH:
                self._pending_crash = f"the guest jumped to {linear:#x}, which is not RAM (guest-physical {gpa:#x})"
                return False
            entry.paddr = MMIO_WINDOW + gpa
            entry.perms = UC_PROT_READ | UC_PROT_WRITE
            return True
        if not self.memory.writable[gpa >> PAGE_SHIFT]:
            perms &= ~UC_PROT_WRITE
        entry.paddr = hfn << PAGE_SHIFT
        entry.perms = perms
        return True

    def _on_mmio_read(self, uc: Uc, offset: int, size: int, _data) -> int:
        ex = MmioExit(offset, size, False)
        if self.host.handle_mmio(ex, self):
            self._stop_soon()
        return ex.value

    def _on_mmio_write(self, uc: Uc, offset: int, size: int, value: int, _data) -> None:
        if self.host.handle_mmio(MmioExit(offset, size, True, value), self):
            self._stop_soon()

    def _on_out(self, uc: Uc, port: int, size: int, value: int, _data) -> None:
        if self.host.handle_io(IoExit(port, size, True, value), self):
            self._stop_soon()

    def _on_in(self, uc: Uc, port: int, size: int, _data) -> int:
        ex = IoExit(port, size, False)
        if self.host.handle_io(ex, self):
            self._stop_soon()
        return ex.value

    def _on_interrupt(self, uc: Uc, intno: int, _data) -> None:
        # ``int n`` arrives with EIP after the instruction; a fault with EIP at it.
        software = self._is_software_int(intno)
        self._pending_vector = (intno, software)
        uc.emu_stop()

    def _is_software_int(self, intno: int) -> bool:
        try:
            eip = self.linear_pc()
            before = self.read_linear(eip - 2, 2)
        except PageFault:
            return False
        return before == bytes((0xCD, intno)) or (intno == 3 and before[1:] == b"\xcc") \
            or (intno == 4 and before[1:] == b"\xce")

    def _stop_soon(self) -> None:
        """Stop before the next translation block (never in the middle of an
        instruction: see InstructionClock.stop_at_next_block)."""
        self._hook_stop = True
        self.clock.stop_at_next_block()
