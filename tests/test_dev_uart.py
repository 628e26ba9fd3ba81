"""The 16550A UART, driven through its eight registers the way serial drivers do."""
from __future__ import annotations

import pytest

from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.uart16550 import Uart16550

THR = RBR = DLL = 0
IER = DLM = 1
IIR = FCR = 2
LCR, MCR, LSR, MSR, SCR = 3, 4, 5, 6, 7


class Wiring:
    """A fake machine: records IRQ levels, events and transmitted bytes."""

    def __init__(self) -> None:
        self.levels: list[bool] = []
        self.events: list[tuple[str, dict]] = []
        self.sent = bytearray()
        ctx = DeviceContext(publish=lambda kind, **data: self.events.append((kind, data)),
                            irq=lambda n: IrqLine(n, lambda _n, level: self.levels.append(level)))
        self.uart = Uart16550("com1", ctx)
        self.uart.sink = self.sent.extend
        self.irq_numbers = self.uart.irq.number

    def out(self, offset: int, value: int) -> None:
        self.uart.write(offset, 1, value)

    def inb(self, offset: int) -> int:
        return self.uart.read(offset, 1)

    @property
    def irq(self) -> bool:
        return self.uart.irq.level


@pytest.fixture
def w() -> Wiring:
    return Wiring()


def osdev_init(w: Wiring) -> None:
    """The OSDev wiki's serial init: 38400 baud 8N1, FIFO on, loopback self-test."""
    w.out(IER, 0x00)          # disable all interrupts
    w.out(LCR, 0x80)          # DLAB on
    w.out(DLL, 0x03)          # divisor 3 = 38400 baud
    w.out(DLM, 0x00)
    w.out(LCR, 0x03)          # 8 bits, no parity, one stop bit
    w.out(FCR, 0xC7)          # FIFO on, clear both, 14-byte trigger
    w.out(MCR, 0x0B)          # DTR, RTS, OUT2
    w.out(MCR, 0x1E)          # loopback
    w.out(THR, 0xAE)


def test_uses_irq_4(w):
    assert w.irq_numbers == 4


def test_osdev_init_sequence_and_loopback_self_test(w):
    osdev_init(w)
    assert w.inb(RBR) == 0xAE                  # the byte came back through the loop
    w.out(MCR, 0x0F)                           # normal operation
    assert w.sent == b""                       # nothing left the machine during the test
    assert [k for k, _ in w.events] == []
    assert w.uart.state()["baud"] == 38400


def test_transmit_goes_to_sink_with_event_and_thr_stays_empty(w):
    osdev_init(w)
    w.inb(RBR)
    w.out(MCR, 0x0F)
    for ch in b"hi\n":
        assert w.inb(LSR) & 0x20               # wait for THRE, as drivers do
        w.out(THR, ch)
    assert bytes(w.sent) == b"hi\n"
    assert w.events == [("serial.tx", {"byte": c}) for c in b"hi\n"]
    assert w.inb(LSR) == 0x60                  # THRE and TEMT, no data


def test_divisor_latch_is_behind_dlab(w):
    w.out(LCR, 0x80)
    w.out(DLL, 0x01)
    w.out(DLM, 0x00)
    assert (w.inb(DLL), w.inb(DLM)) == (0x01, 0x00)
    w.out(LCR, 0x03)
    w.out(IER, 0x05)
    assert w.inb(IER) == 0x05                  # IER is a different register without DLAB
    assert w.uart.state()["baud"] == 115200


def test_iir_reports_fifos_and_no_interrupt(w):
    assert w.inb(IIR) == 0x01                  # 8250 mode, no interrupt pending
    w.out(FCR, 0x01)
    assert w.inb(IIR) == 0xC1                  # FIFOs enabled, nothing pending
    assert w.inb(IIR) & 0x20 == 0              # no 64-byte FIFO: a 16550A, not a 16750


def test_enabling_thre_interrupt_fires_at_once_and_iir_read_clears_it(w):
    w.out(FCR, 0x07)
    w.out(IER, 0x02)
    assert w.irq and w.levels == [True]
    assert w.inb(IIR) == 0xC2                  # THR empty
    assert not w.irq                           # reading IIR acknowledged it
    assert w.inb(IIR) == 0xC1
    w.out(THR, ord("x"))                       # sent instantly: THR empty again
    assert w.irq
    assert w.inb(IIR) == 0xC2


def test_linux_txen_and_thre_tests_see_a_sane_uart(w):
    # serial8250_do_startup: IER=THRI, then LSR and IIR must show a pending interrupt.
    w.out(IER, 0x02)
    lsr, iir = w.inb(LSR), w.inb(IIR)
    assert lsr & 0x40 and not iir & 0x01
    # The THRE test: toggling IER re-raises the interrupt (no UART_BUG_THRE).
    w.out(IER, 0x00)
    w.out(IER, 0x02)
    assert w.inb(IIR) & 0x0F == 0x02


def test_received_data_raises_rda_and_reading_rbr_clears_it(w):
    w.out(FCR, 0x01)                           # FIFO on, trigger level 1
    w.out(IER, 0x01)
    w.uart.feed(b"ab")
    assert w.irq
    assert w.inb(IIR) == 0xC4                  # received data available
    assert w.inb(LSR) & 0x01
    assert w.inb(RBR) == ord("a")
    assert w.irq                               # one byte still waiting
    assert w.inb(RBR) == ord("b")
    assert not w.irq and w.inb(IIR) == 0xC1
    assert not w.inb(LSR) & 0x01
    assert [e for e in w.events if e[0] == "serial.rx"] == [("serial.rx", {"byte": 97}), ("serial.rx", {"byte": 98})]


def test_below_trigger_level_reports_character_timeout(w):
    w.out(FCR, 0xC1)                           # 14-byte trigger
    w.out(IER, 0x01)
    w.uart.feed(b"x")
    assert w.inb(IIR) == 0xCC
    w.uart.feed(bytes(13))
    assert w.inb(IIR) == 0xC4


def test_received_data_outranks_thr_empty(w):
    w.out(FCR, 0x01)
    w.out(IER, 0x03)
    w.uart.feed(b"k")
    assert w.inb(IIR) == 0xC4
    assert w.inb(IIR) == 0xC4                  # reading IIR does not clear RDA
    w.inb(RBR)
    assert w.inb(IIR) == 0xC2                  # now the THRE interrupt shows


def test_input_longer_than_the_fifo_is_not_lost(w):
    w.out(FCR, 0x01)
    data = bytes(range(40))
    w.uart.feed(data)
    assert w.uart.state()["rx_fifo"] == 16
    assert w.uart.pending_input == 40
    got = bytes(w.inb(RBR) for _ in range(40))
    assert got == data
    assert not w.inb(LSR) & 0x02               # no overrun


def test_bios_keyboard_service_can_take_input(w):
    assert not w.uart.has_input() and w.uart.take_input() is None
    w.uart.feed(b"yes")
    assert w.uart.has_input() and w.uart.pending_input == 3
    assert w.uart.peek_input() == ord("y")
    assert w.uart.take_input() == ord("y")
    assert w.uart.take_input() == ord("e")
    assert w.inb(RBR) == ord("s")
    assert w.uart.take_input() is None


def test_loopback_overrun_sets_oe_and_line_status_interrupt(w):
    w.out(IER, 0x04)                           # receiver line status only
    w.out(MCR, 0x10)                           # loopback, FIFO off: one-byte buffer
    w.out(THR, 1)
    w.out(THR, 2)                              # no room: overrun
    assert w.irq and w.inb(IIR) == 0x06
    assert w.inb(LSR) & 0x02
    assert not w.irq                           # reading LSR cleared the error
    assert not w.inb(LSR) & 0x02
    assert w.inb(RBR) == 2                     # without FIFO the newest byte overwrote RBR (as QEMU)


def test_fifo_overrun_keeps_the_fifo_and_loses_the_new_byte(w):
    w.out(FCR, 0x01)
    w.out(MCR, 0x10)
    for i in range(17):
        w.out(THR, i)
    assert w.inb(LSR) & 0x02
    assert [w.inb(RBR) for _ in range(16)] == list(range(16))


def test_loopback_ties_modem_outputs_to_inputs(w):
    assert w.inb(MSR) & 0xF0 == 0xB0           # DCD, DSR, CTS: a terminal is attached
    w.out(MCR, 0x1A)                           # loop, OUT2, RTS (Linux's autoconfig)
    msr = w.inb(MSR)
    assert msr & 0xF0 == 0x90                  # DCD (from OUT2) and CTS (from RTS)
    assert msr & 0x0F                          # DSR changed: delta bits set
    assert w.inb(MSR) & 0x0F == 0              # reading MSR cleared the deltas


def test_modem_status_interrupt(w):
    w.out(IER, 0x08)
    w.out(MCR, 0x10)                           # entering loopback drops DSR/CTS/DCD
    assert w.irq and w.inb(IIR) == 0x00
    w.inb(MSR)
    assert not w.irq


def test_scratch_register_and_fifo_clear(w):
    w.out(SCR, 0x5A)
    assert w.inb(SCR) == 0x5A
    w.out(FCR, 0x01)
    w.out(MCR, 0x10)
    w.out(THR, 9)
    w.out(FCR, 0x03)                           # clear the receive FIFO
    assert not w.inb(LSR) & 0x01


def test_reset_returns_to_power_on_state(w):
    osdev_init(w)
    w.out(IER, 0x02)
    w.uart.reset()
    assert (w.inb(IER), w.inb(LCR), w.inb(MCR), w.inb(IIR)) == (0, 0, 0, 0x01)
    assert not w.irq
