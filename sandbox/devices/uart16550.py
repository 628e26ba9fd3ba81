"""A 16550A UART, the PC's serial port (COM1 at 0x3F8, IRQ 4): the guest's console.

Transmission is instant: a byte written to THR leaves at once through ``sink`` and
THR is empty again (THRE and TEMT stay set). Input the host types is queued "on the
wire" (``feed``) and moves into the 16-byte receive FIFO as the guest makes room, so
no byte is lost (QEMU applies the same back-pressure to its character devices).
As in QEMU, the interrupt line is not gated by MCR OUT2, and a character timeout is
reported at once when the FIFO holds fewer bytes than the trigger level.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable

from sandbox.devices.base import Device, DeviceContext

# Register offsets (DLAB is bit 7 of LCR: it turns offsets 0 and 1 into the divisor).
RBR_THR = 0   # receive buffer (read) / transmit holding (write); DLL when DLAB=1
IER = 1       # interrupt enable; DLM when DLAB=1
IIR_FCR = 2   # interrupt identification (read) / FIFO control (write)
LCR = 3       # line control: word length, parity, stop bits, DLAB
MCR = 4       # modem control: DTR, RTS, OUT1, OUT2, loopback
LSR = 5       # line status
MSR = 6       # modem status
SCR = 7       # scratch

IER_RDA, IER_THRE, IER_RLS, IER_MS = 0x01, 0x02, 0x04, 0x08
LCR_DLAB = 0x80
MCR_DTR, MCR_RTS, MCR_OUT1, MCR_OUT2, MCR_LOOP = 0x01, 0x02, 0x04, 0x08, 0x10
LSR_DR, LSR_OE, LSR_PE, LSR_FE, LSR_BI, LSR_THRE, LSR_TEMT = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI
MSR_DCTS, MSR_DDSR, MSR_TERI, MSR_DDCD = 0x01, 0x02, 0x04, 0x08
MSR_CTS, MSR_DSR, MSR_RI, MSR_DCD = 0x10, 0x20, 0x40, 0x80
IIR_NO_INTERRUPT = 0x01
IIR_FIFOS_ENABLED = 0xC0
FCR_ENABLE, FCR_CLEAR_RX, FCR_CLEAR_TX = 0x01, 0x02, 0x04

FIFO_SIZE = 16
TRIGGER_LEVELS = (1, 4, 8, 14)           # FCR bits 7-6
BASE_CLOCK_BAUD = 115200                  # 1.8432 MHz / 16: baud = 115200 / divisor

# The interrupt sources, highest priority first: (IIR identification, what it means).
INTERRUPT_IDS = {
    0x06: "receiver line status: overrun, parity or framing error, or break",
    0x04: "received data available: the receive FIFO reached its trigger level",
    0x0C: "character timeout: data waits in the receive FIFO below the trigger level",
    0x02: "transmitter holding register empty: the guest may send the next byte",
    0x00: "modem status: CTS, DSR, RI or DCD changed",
}


class Uart16550(Device):
    description = "A 16550A serial port: the guest's text console, one byte at a time in each direction."

    def __init__(self, name: str, ctx: DeviceContext | None = None, irq: int = 4) -> None:
        super().__init__(name, ctx)
        self.irq = self.ctx.irq(irq)
        self.sink: Callable[[bytes], None] | None = None   # where transmitted bytes go
        self._wire: deque[int] = deque()                   # host input not yet in the FIFO
        self.transmitted = 0
        self._power_on()

    def _power_on(self) -> None:
        self.ier = 0
        self.lcr = 0
        self.mcr = 0
        self.scr = 0
        self.dll = 0x0C          # 9600 baud, as most firmware leaves it
        self.dlm = 0
        self.fifo_enabled = False
        self.trigger = 1
        self.errors = 0          # latched LSR error bits (OE, PE, FE, BI)
        self.msr = self._modem_lines()
        self.thre_pending = False  # a THR-empty interrupt not yet acknowledged
        self.rx: deque[int] = deque()
        self.last_rx = 0
        if self.irq.level:
            self.irq.lower()

    def reset(self) -> None:
        self._power_on()
        self._refill()

    # --- port I/O ---------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR:
            return self.dll if dlab else self._read_rbr()
        if offset == IER:
            return self.dlm if dlab else self.ier
        if offset == IIR_FCR:
            return self._read_iir()
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return self._read_lsr()
        if offset == MSR:
            value = self.msr
            self.msr &= 0xF0                    # reading MSR clears the delta bits
            self._update_irq()
            return value
        if offset == SCR:
            return self.scr
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR:
            if dlab:
                self.dll = value
            else:
                self._transmit(value)
        elif offset == IER:
            if dlab:
                self.dlm = value
            else:
                self._write_ier(value)
        elif offset == IIR_FCR:
            self._write_fcr(value)
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self._write_mcr(value)
        elif offset == SCR:
            self.scr = value
        # LSR and MSR writes are factory-test features: ignored, as QEMU does.

    # --- registers ---------------------------------------------------------------------
    def _read_rbr(self) -> int:
        if self.rx:
            self.last_rx = self.rx.popleft()
            self._refill()
            self._update_irq()
        return self.last_rx

    def _read_iir(self) -> int:
        ident = self._interrupt_id()
        if ident == 0x02:
            self.thre_pending = False          # reading IIR acknowledges THR empty
            self._update_irq()
        value = IIR_NO_INTERRUPT if ident is None else ident
        return value | (IIR_FIFOS_ENABLED if self.fifo_enabled else 0)

    def _read_lsr(self) -> int:
        value = self.lsr
        if self.errors:
            self.errors = 0                    # reading LSR clears the error bits
            self._update_irq()
        return value

    @property
    def lsr(self) -> int:
        return (LSR_DR if self.rx else 0) | self.errors | LSR_THRE | LSR_TEMT

    def _transmit(self, byte: int) -> None:
        if self.mcr & MCR_LOOP:
            self._receive(byte)                # loopback: the byte comes straight back
        else:
            self.transmitted += 1
            self.ctx.publish("serial.tx", byte=byte)
            if self.sink is not None:
                self.sink(bytes((byte,)))
        self.thre_pending = True               # sent at once: THR is empty again
        self._update_irq()

    def _write_ier(self, value: int) -> None:
        old, self.ier = self.ier, value & 0x0F
        if (old ^ self.ier) & IER_THRE:
            # Enabling the THRE interrupt while THR is empty interrupts at once
            # (Linux's 8250 driver tests exactly this at start-up).
            self.thre_pending = bool(self.ier & IER_THRE)
        self._update_irq()

    def _write_fcr(self, value: int) -> None:
        enable = bool(value & FCR_ENABLE)
        if enable != self.fifo_enabled or value & FCR_CLEAR_RX:
            self.rx.clear()                    # toggling FIFO mode resets both FIFOs
        self.fifo_enabled = enable
        self.trigger = TRIGGER_LEVELS[value >> 6] if enable else 1
        self._refill()
        self._update_irq()

    def _write_mcr(self, value: int) -> None:
        was_loop = self.mcr & MCR_LOOP
        self.mcr = value & 0x1F
        new = self._modem_lines()
        old = self.msr & 0xF0
        deltas = 0
        if (old ^ new) & MSR_CTS:
            deltas |= MSR_DCTS
        if (old ^ new) & MSR_DSR:
            deltas |= MSR_DDSR
        if old & MSR_RI and not new & MSR_RI:
            deltas |= MSR_TERI
        if (old ^ new) & MSR_DCD:
            deltas |= MSR_DDCD
        self.msr = new | (self.msr & 0x0F) | deltas
        if was_loop and not self.mcr & MCR_LOOP:
            self._refill()                     # back on the wire: waiting input flows in
        self._update_irq()

    def _modem_lines(self) -> int:
        if self.mcr & MCR_LOOP:
            # Loopback ties the modem outputs to the inputs: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
            return ((MSR_CTS if self.mcr & MCR_RTS else 0) | (MSR_DSR if self.mcr & MCR_DTR else 0)
                    | (MSR_RI if self.mcr & MCR_OUT1 else 0) | (MSR_DCD if self.mcr & MCR_OUT2 else 0))
        return MSR_DCD | MSR_DSR | MSR_CTS     # a terminal is connected and ready

    # --- receive path -----------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return FIFO_SIZE if self.fifo_enabled else 1

    def _receive(self, byte: int) -> None:
        if len(self.rx) < self.capacity:
            self.rx.append(byte)
            return
        self.errors |= LSR_OE                  # overrun: a byte is lost
        if not self.fifo_enabled:
            self.rx[0] = byte                  # without FIFO the new byte overwrites RBR

    def _refill(self) -> None:
        if self.mcr & MCR_LOOP:
            return                             # the receiver is disconnected from the wire
        while self._wire and len(self.rx) < self.capacity:
            self.rx.append(self._wire.popleft())

    def feed(self, data: bytes) -> None:
        """Host input (keyboard, a pasted line): queue it for the guest to receive."""
        for byte in data:
            self.ctx.publish("serial.rx", byte=byte)
            self._wire.append(byte)
        self._refill()
        self._update_irq()

    @property
    def pending_input(self) -> int:
        return len(self.rx) + len(self._wire)

    def has_input(self) -> bool:
        return self.pending_input > 0

    def peek_input(self) -> int | None:
        """The next input byte, left in place (int 16h function 1 peeks)."""
        if self.rx:
            return self.rx[0]
        return self._wire[0] if self._wire else None

    def take_input(self) -> int | None:
        """Take the next input byte without the guest's UART driver (BIOS int 16h)."""
        if self.rx:
            byte = self.rx.popleft()
        elif self._wire:
            byte = self._wire.popleft()
        else:
            return None
        self._refill()
        self._update_irq()
        return byte

    # --- interrupts -------------------------------------------------------------------
    def _interrupt_id(self) -> int | None:
        """The highest-priority pending and enabled interrupt (an IIR code), or None."""
        if self.ier & IER_RLS and self.errors:
            return 0x06
        if self.ier & IER_RDA and self.rx:
            return 0x04 if len(self.rx) >= self.trigger else 0x0C
        if self.ier & IER_THRE and self.thre_pending:
            return 0x02
        if self.ier & IER_MS and self.msr & 0x0F:
            return 0x00
        return None

    def _update_irq(self) -> None:
        # Re-assert while pending (as QEMU's serial model does): a PIC re-initialised
        # since the line went high sees a fresh edge.
        pending = self._interrupt_id() is not None
        if pending:
            self.irq.raise_()
        elif not pending and self.irq.level:
            self.irq.lower()

    # --- inspection -------------------------------------------------------------------
    @property
    def divisor(self) -> int:
        return (self.dlm << 8) | self.dll

    def state(self) -> dict[str, Any]:
        ident = self._interrupt_id()
        divisor = self.divisor
        return {
            "ier": self.ier, "lcr": self.lcr, "mcr": self.mcr, "lsr": self.lsr,
            "msr": self.msr, "scr": self.scr, "divisor": divisor,
            "baud": BASE_CLOCK_BAUD // divisor if divisor else None,
            "fifo_enabled": self.fifo_enabled, "trigger": self.trigger,
            "rx_fifo": len(self.rx), "pending_input": self.pending_input,
            "transmitted": self.transmitted, "loopback": bool(self.mcr & MCR_LOOP),
            "interrupt": None if ident is None else INTERRUPT_IDS[ident],
            "irq_level": self.irq.level,
        }
