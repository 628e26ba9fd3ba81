"""int 14h: the BIOS serial port services, on COM1 (DX = 0), through the UART's ports.

Like a real BIOS, these drive the 16550 with port I/O, so the guest's UART model sees
exactly what a BIOS would do to it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.firmware.services import service

if TYPE_CHECKING:
    from sandbox.firmware.bios import Firmware
    from sandbox.firmware.bios_call import BiosCall

COM1 = 0x3F8
BAUD_DIVISORS = (1047, 768, 384, 192, 96, 48, 24, 12)   # 110 ... 9600 baud (bits 7-5 of AL)


def _status(fw: "Firmware") -> tuple[int, int]:
    """(line status, modem status) as int 14h returns them in AH, AL."""
    return fw.port_read(COM1 + 5), fw.port_read(COM1 + 6)


def _only_com1(call: "BiosCall") -> bool:
    if call.dx != 0:
        call.set(ah=0x80)               # timeout: no such port
        return False
    return True


@service(0x14, 0x00, "Initialise COM1: baud rate, parity, stop bits and word length from AL.")
def init(call: "BiosCall", fw: "Firmware") -> None:
    if not _only_com1(call):
        return
    divisor = BAUD_DIVISORS[call.al >> 5]
    fw.port_write(COM1 + 3, 0x80)                     # DLAB on
    fw.port_write(COM1 + 0, divisor & 0xFF)
    fw.port_write(COM1 + 1, divisor >> 8)
    fw.port_write(COM1 + 3, call.al & 0x1F)           # word length, stop bits, parity; DLAB off
    lsr, msr = _status(fw)
    call.set(ah=lsr, al=msr)


@service(0x14, 0x01, "Send the character in AL on COM1; AH = line status (bit 7 set on timeout).")
def send(call: "BiosCall", fw: "Firmware") -> None:
    if not _only_com1(call):
        return
    lsr, _ = _status(fw)
    if not lsr & 0x20:
        call.set(ah=lsr | 0x80)
        return
    fw.port_write(COM1, call.al)
    call.set(ah=_status(fw)[0])


@service(0x14, 0x02, "Receive a character from COM1 into AL (AH bit 7 set when none arrived).")
def receive(call: "BiosCall", fw: "Firmware") -> None:
    if not _only_com1(call):
        return
    lsr, _ = _status(fw)
    if not lsr & 0x01:
        call.set(ah=lsr | 0x80)
        return
    call.set(al=fw.port_read(COM1), ah=_status(fw)[0] & 0x1E)


@service(0x14, 0x03, "COM1 status: line status in AH, modem status in AL.")
def status(call: "BiosCall", fw: "Firmware") -> None:
    if not _only_com1(call):
        return
    lsr, msr = _status(fw)
    call.set(ah=lsr, al=msr)
