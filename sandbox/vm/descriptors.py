"""Segment and gate descriptors as the x86 defines them (Intel SDM vol. 3, 3.4.5 and 6.11).

Used to deliver interrupts in software (Unicorn does not vector through the IDT) and by
the Multiboot loader, which writes a flat GDT for the kernel.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Segment:
    base: int
    limit: int       # in bytes, granularity applied
    access: int      # P | DPL | S | type
    flags: int       # G | D/B | L | AVL (high nibble of byte 6)

    @property
    def present(self) -> bool:
        return bool(self.access & 0x80)

    @property
    def dpl(self) -> int:
        return (self.access >> 5) & 3

    @property
    def is_code(self) -> bool:
        return bool(self.access & 0x10) and bool(self.access & 0x08)


def parse_segment(raw: bytes) -> Segment:
    lo, hi = struct.unpack("<II", raw)
    base = (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF000000)
    limit = (lo & 0xFFFF) | (hi & 0x000F0000)
    flags = (hi >> 20) & 0xF
    if flags & 0x8:                      # G: limit counts 4 KiB pages
        limit = (limit << 12) | 0xFFF
    return Segment(base, limit, (hi >> 8) & 0xFF, flags)


def encode_segment(base: int, limit: int, access: int, flags: int) -> bytes:
    """``limit`` in units of the granularity ``flags`` selects (pages when G is set)."""
    lo = (limit & 0xFFFF) | ((base & 0xFFFF) << 16)
    hi = ((base >> 16) & 0xFF) | (access << 8) | (limit & 0xF0000) | (flags << 20) | (base & 0xFF000000)
    return struct.pack("<II", lo, hi)


GATE_TASK = 0x5
GATE_INT16, GATE_TRAP16 = 0x6, 0x7
GATE_INT32, GATE_TRAP32 = 0xE, 0xF


@dataclass(frozen=True, slots=True)
class Gate:
    selector: int
    offset: int
    type: int
    dpl: int
    present: bool

    @property
    def is_interrupt_gate(self) -> bool:
        """Interrupt gates clear IF on entry; trap gates leave it."""
        return self.type in (GATE_INT16, GATE_INT32)

    @property
    def is_32bit(self) -> bool:
        return self.type in (GATE_INT32, GATE_TRAP32)


def parse_gate(raw: bytes) -> Gate:
    off_lo, sel, _zero, access, off_hi = struct.unpack("<HHBBH", raw)
    return Gate(sel, off_lo | (off_hi << 16), access & 0xF, (access >> 5) & 3, bool(access & 0x80))


# Exceptions that push an error code (Intel SDM vol. 3, table 6-1).
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21})
# Contributory exceptions: two of them in a row make a double fault.
CONTRIBUTORY = frozenset({0, 10, 11, 12, 13})

EXCEPTION_NAMES = {
    0: "divide error (#DE)", 1: "debug (#DB)", 2: "NMI", 3: "breakpoint (#BP)",
    4: "overflow (#OF)", 5: "bound range (#BR)", 6: "invalid opcode (#UD)",
    7: "device not available (#NM)", 8: "double fault (#DF)", 10: "invalid TSS (#TS)",
    11: "segment not present (#NP)", 12: "stack fault (#SS)", 13: "general protection (#GP)",
    14: "page fault (#PF)", 16: "x87 error (#MF)", 17: "alignment check (#AC)",
    18: "machine check (#MC)", 19: "SIMD error (#XM)",
}
