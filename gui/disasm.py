"""Disassembly around the instruction pointer, with capstone.

x86 code cannot be decoded backwards reliably, so the lines before the PC are found
the way debuggers do it: try each start offset in the bytes before the PC and keep
the decoding that lands exactly on the PC after the most instructions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import capstone


@dataclass(frozen=True)
class Line:
    address: int
    raw: bytes
    text: str
    is_pc: bool


@lru_cache(maxsize=2)
def _engine(bits: int) -> capstone.Cs:
    return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_16 if bits == 16 else capstone.CS_MODE_32)


def _decode(code: bytes, base: int, bits: int, limit: int) -> list[Line]:
    lines = []
    for addr, size, mnemonic, operands in _engine(bits).disasm_lite(code, base):
        lines.append(Line(addr, code[addr - base:addr - base + size], f"{mnemonic} {operands}".strip(), False))
        if len(lines) >= limit:
            break
    return lines


def around(code: bytes, base: int, pc: int, bits: int = 32, before: int = 6, after: int = 14) -> list[Line]:
    """Up to ``before`` instructions before ``pc`` and ``after`` from it (the PC's line
    has ``is_pc``). ``code`` holds the bytes at linear address ``base``."""
    if not base <= pc <= base + len(code):
        return []
    best: list[Line] = []
    for start in range(base, pc):
        lines = _decode(code[start - base:pc - base], start, bits, 64)
        if lines and lines[-1].address + len(lines[-1].raw) == pc and len(lines) > len(best):
            best = lines
    tail = _decode(code[pc - base:], pc, bits, after)
    if tail:
        tail[0] = Line(tail[0].address, tail[0].raw, tail[0].text, True)
    return best[-before:] + tail
