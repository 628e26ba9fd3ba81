"""The two 8259A programmable interrupt controllers of the PC (master 0x20, slave 0xA0).

Devices raise lines (IRQ 0-15); each chip latches requests in IRR, masks them with
IMR, and tells the CPU about the highest-priority request that outranks everything
in service (ISR). The CPU's acknowledge cycle (INTA) moves the request to ISR and
yields the vector; the guest's EOI clears it again. The slave's output drives the
master's input 2 (the cascade), so IRQs 8-15 reach the CPU through IRQ 2.
"""
from __future__ import annotations

from typing import Any, Callable

from sandbox.devices.base import Device, DeviceContext

CASCADE = 2

# ICW1 (written to the even port with bit 4 set) and ICW4 bits.
ICW1_IC4, ICW1_SNGL, ICW1_LTIM = 0x01, 0x02, 0x08
ICW4_AEOI, ICW4_SFNM = 0x02, 0x10
# OCW3 bits (even port, bits 4-3 = 01).
OCW3_RIS, OCW3_RR, OCW3_POLL, OCW3_SMM, OCW3_ESMM = 0x01, 0x02, 0x04, 0x20, 0x40

# Inputs from highest to lowest priority, for each choice of the lowest-priority input.
PRIORITY_ORDER = tuple(tuple((lowest + 1 + i) & 7 for i in range(8)) for lowest in range(8))


class Pic8259(Device):
    """One 8259A: two ports, offset 0 (commands, IRR/ISR/poll) and 1 (IMR, ICW2-4)."""

    description = "An 8259A interrupt controller: it prioritises eight interrupt lines and hands the CPU a vector."

    def __init__(self, name: str, ctx: DeviceContext | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        super().__init__(name, ctx)
        self.on_change = on_change or (lambda: None)
        self.lines = 0            # current level of each input
        self.elcr = 0             # inputs forced to level-triggered (the PC's ELCR)
        self._power_on()

    def _power_on(self) -> None:
        self._initialise()
        self.vector_base = 0
        self.init_step = 0        # 0: operating; 2, 3, 4: expecting that ICW next

    def _initialise(self) -> None:
        """What ICW1 does (8259A datasheet): clear IMR/ISR/IRR, IR0 highest priority,
        IRR selected for reading, special mask mode off, edge detection re-armed:
        an input that is still high must be asserted again to request (as QEMU's
        ``last_irr = 0``; devices re-assert their line whenever their state changes)."""
        self.irr = 0
        self.lines = 0
        self.isr = 0
        self.imr = 0
        self.lowest = 7           # the input with the lowest priority (rotation)
        self.read_isr = False
        self.poll = False
        self.special_mask = False
        self.auto_eoi = False
        self.rotate_on_aeoi = False
        self.fully_nested = False
        self.level_triggered = False
        self.single = False
        self.icw4_needed = False
        self.icw3 = 0

    def reset(self) -> None:
        self.lines = 0
        self._power_on()

    # --- inputs ---------------------------------------------------------------------
    def set_input(self, line: int, level: bool) -> None:
        bit = 1 << line
        was = self.lines & bit
        if level:
            self.lines |= bit
            if self._is_level(line) or not was:
                self.irr |= bit                # edge mode: only a rising edge requests
        else:
            self.lines &= ~bit
            if self._is_level(line):
                self.irr &= ~bit               # level mode: the request goes with the line
        self.on_change()

    def _is_level(self, line: int) -> bool:
        return self.level_triggered or bool(self.elcr & (1 << line))

    # --- priority -------------------------------------------------------------------
    def _highest(self, mask: int) -> int | None:
        if mask:
            for line in PRIORITY_ORDER[self.lowest]:
                if mask & (1 << line):
                    return line
        return None

    def pending(self) -> int | None:
        """The input the chip would signal to the CPU now, or None."""
        requests = self.irr & ~self.imr
        if not requests:
            return None
        request = self._highest(requests)
        in_service = self.isr
        if self.special_mask:
            in_service &= ~self.imr            # masked in-service levels do not block
        if self.fully_nested and self.icw3 & (1 << CASCADE) and not self.single:
            in_service &= ~(1 << CASCADE)      # master in SFNM: more slave IRQs may nest
        blocker = self._highest(in_service)
        order = PRIORITY_ORDER[self.lowest]
        if blocker is not None and order.index(blocker) <= order.index(request):
            return None
        return request

    def output(self) -> bool:
        return self.pending() is not None

    def intack(self, line: int) -> None:
        """The INTA cycle for ``line``: it moves from IRR to ISR (unless auto-EOI)."""
        bit = 1 << line
        if not self._is_level(line):
            self.irr &= ~bit
        if self.auto_eoi:
            if self.rotate_on_aeoi:
                self.lowest = line
        else:
            self.isr |= bit
        self.on_change()

    # --- port I/O ---------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == 1:
            return self.imr
        if self.poll:
            self.poll = False
            line = self.pending()
            if line is None:
                return 0x00
            self.intack(line)
            return 0x80 | line
        return self.isr if self.read_isr else self.irr

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == 0:
            if value & 0x10:
                self._icw1(value)
            elif value & 0x08:
                self._ocw3(value)
            else:
                self._ocw2(value)
        elif self.init_step == 2:
            self.vector_base = value & 0xF8
            self.init_step = 4 if self.single else 3
            self._maybe_finish_init()
        elif self.init_step == 3:
            self.icw3 = value
            self.init_step = 4
            self._maybe_finish_init()
        elif self.init_step == 4:
            self.auto_eoi = bool(value & ICW4_AEOI)
            self.fully_nested = bool(value & ICW4_SFNM)
            self.init_step = 0
        else:
            self.imr = value                   # OCW1: the interrupt mask
        self.on_change()

    def _icw1(self, value: int) -> None:
        self._initialise()
        self.icw4_needed = bool(value & ICW1_IC4)
        self.single = bool(value & ICW1_SNGL)
        self.level_triggered = bool(value & ICW1_LTIM)
        self.init_step = 2

    def _maybe_finish_init(self) -> None:
        if self.init_step == 4 and not self.icw4_needed:
            self.auto_eoi = False
            self.init_step = 0

    def _ocw2(self, value: int) -> None:
        command = value >> 5
        action = OCW2_COMMANDS[command][1]
        action(self, value & 7)

    def _ocw3(self, value: int) -> None:
        if value & OCW3_ESMM:
            self.special_mask = bool(value & OCW3_SMM)
        if value & OCW3_RR:
            self.read_isr = bool(value & OCW3_RIS)
        self.poll = bool(value & OCW3_POLL)

    # --- OCW2 actions ----------------------------------------------------------------
    def _eoi(self, _level: int) -> None:
        line = self._highest(self.isr)
        if line is not None:
            self.isr &= ~(1 << line)

    def _specific_eoi(self, level: int) -> None:
        self.isr &= ~(1 << level)

    def _rotate_eoi(self, _level: int) -> None:
        line = self._highest(self.isr)
        if line is not None:
            self.isr &= ~(1 << line)
            self.lowest = line

    def _rotate_specific_eoi(self, level: int) -> None:
        self.isr &= ~(1 << level)
        self.lowest = level

    def _set_priority(self, level: int) -> None:
        self.lowest = level

    def _set_rotate_aeoi(self, _level: int) -> None:
        self.rotate_on_aeoi = True

    def _clear_rotate_aeoi(self, _level: int) -> None:
        self.rotate_on_aeoi = False

    def _nothing(self, _level: int) -> None:
        return None

    def state(self) -> dict[str, Any]:
        return {"irr": self.irr, "isr": self.isr, "imr": self.imr, "vector_base": self.vector_base,
                "lowest_priority": self.lowest, "initialising": self.init_step != 0,
                "auto_eoi": self.auto_eoi, "level_triggered": self.level_triggered,
                "special_mask": self.special_mask, "pending": self.pending()}


# OCW2 bits 7-5 (R, SL, EOI): what each command does.
OCW2_COMMANDS: dict[int, tuple[str, Callable[[Pic8259, int], None]]] = {
    0b000: ("clear rotate-in-auto-EOI mode", Pic8259._clear_rotate_aeoi),
    0b001: ("non-specific EOI: end the highest-priority interrupt in service", Pic8259._eoi),
    0b010: ("no operation", Pic8259._nothing),
    0b011: ("specific EOI: end the in-service interrupt given in bits 2-0", Pic8259._specific_eoi),
    0b100: ("set rotate-in-auto-EOI mode", Pic8259._set_rotate_aeoi),
    0b101: ("rotate on non-specific EOI: end it and make it the lowest priority", Pic8259._rotate_eoi),
    0b110: ("set priority: the line in bits 2-0 becomes the lowest priority", Pic8259._set_priority),
    0b111: ("rotate on specific EOI", Pic8259._rotate_specific_eoi),
}


class PicPair(Device):
    """The PC's master/slave pair as the hypervisor sees it: ``set_irq`` for devices,
    ``has_interrupt``/``acknowledge`` for the vCPU, ``.master``/``.slave`` for the bus."""

    description = "Two cascaded 8259A interrupt controllers: sixteen IRQ lines funnelled into the CPU's single interrupt pin."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self.on_interrupt: Callable[[], None] | None = None   # INTR rose: wake the vCPU
        self._intr = False
        self.master = Pic8259(f"{name}.master", self.ctx, self._master_changed)
        self.slave = Pic8259(f"{name}.slave", self.ctx, self._slave_changed)

    def _slave_changed(self) -> None:
        self.master.set_input(CASCADE, self.slave.output())

    def _master_changed(self) -> None:
        intr = self.master.output()
        rose = intr and not self._intr
        self._intr = intr
        if rose and self.on_interrupt is not None:
            self.on_interrupt()

    def set_irq(self, irq: int, level: bool) -> None:
        """Drive line ``irq`` (0-15). ISA's IRQ 2 pin is wired to IRQ 9 on the AT."""
        if not 0 <= irq <= 15:
            raise ValueError(f"IRQ {irq} does not exist on the PC (0-15)")
        if irq == CASCADE:
            irq = 9
        chip, line = (self.master, irq) if irq < 8 else (self.slave, irq - 8)
        chip.set_input(line, level)

    def has_interrupt(self) -> bool:
        return self.master.output()

    def acknowledge(self) -> int:
        """The CPU's INTA cycle: the vector to deliver. A request that vanished
        yields the spurious vector of IRQ 7 (or 15, with IRQ 2 put in service)."""
        line = self.master.pending()
        if line is None:
            return self.master.vector_base + 7
        if line == CASCADE and not self.master.single:
            slave_line = self.slave.pending()
            if slave_line is None:
                slave_line = 7                 # spurious IRQ 15: the slave has nothing
            else:
                self.slave.intack(slave_line)
            self.master.intack(CASCADE)
            return self.slave.vector_base + slave_line
        self.master.intack(line)
        return self.master.vector_base + line

    def reset(self) -> None:
        self.slave.reset()
        self.master.reset()
        self._intr = False

    def state(self) -> dict[str, Any]:
        return {"master": self.master.state(), "slave": self.slave.state(),
                "intr": self.has_interrupt()}
