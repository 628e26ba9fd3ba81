"""VGA in 80x25 colour text mode: the registers a text-mode guest touches (0x3C0-0x3DF).

The screen itself is plain guest RAM at 0xB8000: two bytes per character cell, the
CP437 character code then its attribute (foreground colour in bits 0-3, background
in bits 4-6, blink or bright background in bit 7). This device owns the registers
around it: the CRT controller (cursor position and shape, where the screen starts
in memory), the attribute controller and DAC (which colour each attribute means),
the sequencer and graphics controller (kept, not interpreted), and input status 1
at 0x3DA, whose retrace bit flips on every read so that "wait for retrace" loops end.
"""
from __future__ import annotations

from typing import Any

from sandbox.devices.base import Device, DeviceContext

TEXT_BASE = 0xB8000

# Offsets from 0x3C0.
ATTR_INDEX_DATA, ATTR_READ, MISC_WRITE_STATUS0 = 0x00, 0x01, 0x02
SEQ_INDEX, SEQ_DATA = 0x04, 0x05
DAC_MASK, DAC_READ_INDEX, DAC_WRITE_INDEX, DAC_DATA = 0x06, 0x07, 0x08, 0x09
FEATURE_READ, MISC_READ = 0x0A, 0x0C
GC_INDEX, GC_DATA = 0x0E, 0x0F
CRTC_INDEX, CRTC_DATA = 0x14, 0x15
STATUS1 = 0x1A

# CRT controller registers a text-mode guest uses.
CRTC_REGISTERS = {
    0x01: "horizontal display end: characters per row minus one",
    0x07: "overflow: bits 8-9 of the vertical registers",
    0x09: "maximum scan line: character height minus one",
    0x0A: "cursor start scan line (bit 5 hides the cursor)",
    0x0B: "cursor end scan line",
    0x0C: "start address high: where on screen memory the display begins",
    0x0D: "start address low",
    0x0E: "cursor location high",
    0x0F: "cursor location low",
    0x11: "vertical retrace end (bit 7 write-protects registers 0-7)",
    0x12: "vertical display end: scan lines shown minus one (low 8 bits)",
    0x13: "offset: words per row",
}

# The standard 80x25 16-colour text mode (mode 3) register values.
MODE3_CRTC = bytes((0x5F, 0x4F, 0x50, 0x82, 0x55, 0x81, 0xBF, 0x1F, 0x00, 0x4F, 0x0D, 0x0E,
                    0x00, 0x00, 0x00, 0x00, 0x9C, 0x8E, 0x8F, 0x28, 0x1F, 0x96, 0xB9, 0xA3, 0xFF))
MODE3_SEQ = bytes((0x03, 0x00, 0x03, 0x00, 0x02))
MODE3_GC = bytes((0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0E, 0x00, 0xFF))
MODE3_ATTR = bytes((0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3A, 0x3B,
                    0x3C, 0x3D, 0x3E, 0x3F, 0x0C, 0x00, 0x0F, 0x08, 0x00))
MODE3_MISC = 0x67

# CP437 glyphs for codes 0x00-0x1F and 0x7F (Python's cp437 codec gives control characters).
_LOW_GLYPHS = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼"
CP437 = tuple(_LOW_GLYPHS[c] if c < 0x20 else "⌂" if c == 0x7F else bytes((c,)).decode("cp437")
              for c in range(256))


def _ega_colour(index: int) -> tuple[int, int, int]:
    """The 6-bit DAC entry of the EGA palette colour ``index`` (bits rgbRGB)."""
    def level(strong: int, weak: int) -> int:
        return ((index >> strong) & 1) * 0x2A + ((index >> weak) & 1) * 0x15
    return level(2, 5), level(1, 4), level(0, 3)


class Vga(Device):
    description = "A VGA adapter in 80x25 text mode: characters and colours live in guest RAM at 0xB8000, the cursor and palette in its registers."

    def __init__(self, name: str, ctx: DeviceContext | None = None) -> None:
        super().__init__(name, ctx)
        self._power_on()

    def _power_on(self) -> None:
        self.crtc = bytearray(MODE3_CRTC)
        self.seq = bytearray(MODE3_SEQ)
        self.gc = bytearray(MODE3_GC)
        self.attr = bytearray(MODE3_ATTR)
        self.misc = MODE3_MISC
        self.crtc_index = self.seq_index = self.gc_index = 0
        self.attr_index = 0x20         # bit 5 (PAS): the palette drives the screen
        self.attr_flipflop = False     # False: next 0x3C0 write is an index
        self.dac = [_ega_colour(i % 64) for i in range(256)]
        self.dac_mask = 0xFF
        self.dac_write = self.dac_read = 0
        self.dac_component = 0
        self.dac_reading = False
        self.retrace = False

    def reset(self) -> None:
        self._power_on()

    # --- port I/O ---------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == CRTC_INDEX:
            return self.crtc_index
        if offset == CRTC_DATA:
            return self.crtc[self.crtc_index] if self.crtc_index < len(self.crtc) else 0xFF
        if offset == STATUS1:
            self.attr_flipflop = False         # reading 0x3DA resets the attribute flip-flop
            self.retrace = not self.retrace
            return 0x09 if self.retrace else 0x00   # bit 3 vertical retrace, bit 0 display off
        if offset == ATTR_INDEX_DATA:
            return self.attr_index
        if offset == ATTR_READ:
            index = self.attr_index & 0x1F
            return self.attr[index] if index < len(self.attr) else 0xFF
        if offset == SEQ_INDEX:
            return self.seq_index
        if offset == SEQ_DATA:
            return self.seq[self.seq_index] if self.seq_index < len(self.seq) else 0xFF
        if offset == GC_INDEX:
            return self.gc_index
        if offset == GC_DATA:
            return self.gc[self.gc_index] if self.gc_index < len(self.gc) else 0xFF
        if offset == MISC_READ:
            return self.misc
        if offset == DAC_MASK:
            return self.dac_mask
        if offset == DAC_READ_INDEX:
            return 0x03 if self.dac_reading else 0x00
        if offset == DAC_WRITE_INDEX:
            return self.dac_write
        if offset == DAC_DATA:
            return self._read_dac()
        if offset in (MISC_WRITE_STATUS0, FEATURE_READ):
            return 0x00
        return 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 2 and offset in (CRTC_INDEX, SEQ_INDEX, GC_INDEX):
            # outw(index | data << 8): the usual way to set an indexed register.
            self.write(offset, 1, value & 0xFF)
            self.write(offset + 1, 1, value >> 8)
            return
        value &= 0xFF
        if offset == CRTC_INDEX:
            self.crtc_index = value & 0x3F
        elif offset == CRTC_DATA:
            self._write_crtc(value)
        elif offset == ATTR_INDEX_DATA:
            if not self.attr_flipflop:
                self.attr_index = value & 0x3F
            elif (self.attr_index & 0x1F) < len(self.attr):
                self.attr[self.attr_index & 0x1F] = value
            self.attr_flipflop = not self.attr_flipflop
        elif offset == SEQ_INDEX:
            self.seq_index = value & 0x07
        elif offset == SEQ_DATA and self.seq_index < len(self.seq):
            self.seq[self.seq_index] = value
        elif offset == GC_INDEX:
            self.gc_index = value & 0x0F
        elif offset == GC_DATA and self.gc_index < len(self.gc):
            self.gc[self.gc_index] = value
        elif offset == MISC_WRITE_STATUS0:
            self.misc = value
        elif offset == DAC_MASK:
            self.dac_mask = value
        elif offset == DAC_READ_INDEX:
            self.dac_read, self.dac_component, self.dac_reading = value, 0, True
        elif offset == DAC_WRITE_INDEX:
            self.dac_write, self.dac_component, self.dac_reading = value, 0, False
        elif offset == DAC_DATA:
            self._write_dac(value)

    def _write_crtc(self, value: int) -> None:
        index = self.crtc_index
        if index >= len(self.crtc):
            return
        if index <= 7 and self.crtc[0x11] & 0x80:
            if index == 7:                     # protected, except the line compare bit 4
                self.crtc[7] = (self.crtc[7] & ~0x10) | (value & 0x10)
            return
        self.crtc[index] = value

    def _write_dac(self, value: int) -> None:
        entry = list(self.dac[self.dac_write])
        entry[self.dac_component] = value & 0x3F
        self.dac[self.dac_write] = (entry[0], entry[1], entry[2])
        self.dac_component += 1
        if self.dac_component == 3:
            self.dac_component = 0
            self.dac_write = (self.dac_write + 1) & 0xFF

    def _read_dac(self) -> int:
        value = self.dac[self.dac_read][self.dac_component]
        self.dac_component += 1
        if self.dac_component == 3:
            self.dac_component = 0
            self.dac_read = (self.dac_read + 1) & 0xFF
        return value

    # --- what the screen shows ----------------------------------------------------------
    @property
    def columns(self) -> int:
        return self.crtc[0x01] + 1

    @property
    def rows(self) -> int:
        c = self.crtc
        scan_lines = c[0x12] | ((c[0x07] >> 1) & 1) << 8 | ((c[0x07] >> 6) & 1) << 9
        rows = (scan_lines + 1) // ((c[0x09] & 0x1F) + 1)
        return rows if 1 <= rows <= 100 else 25

    @property
    def start_address(self) -> int:
        return (self.crtc[0x0C] << 8) | self.crtc[0x0D]

    def _text(self) -> bytes:
        return self.ctx.read_guest(TEXT_BASE + 2 * self.start_address, 2 * self.columns * self.rows)

    def screen(self) -> list[str]:
        """The text on screen, one string per row, CP437 decoded."""
        data, cols = self._text(), self.columns
        return ["".join(CP437[c] for c in data[r * 2 * cols:(r + 1) * 2 * cols:2]) for r in range(self.rows)]

    def cells(self) -> list[list[tuple[str, int]]]:
        """Each row as (character, attribute byte) pairs, for a colour renderer."""
        data, cols = self._text(), self.columns
        return [[(CP437[data[i]], data[i + 1]) for i in range((r * cols) * 2, (r + 1) * cols * 2, 2)]
                for r in range(self.rows)]

    def cursor(self) -> tuple[int, int]:
        location = ((self.crtc[0x0E] << 8) | self.crtc[0x0F]) - self.start_address
        return divmod(max(location, 0), self.columns)

    def cursor_visible(self) -> bool:
        return not self.crtc[0x0A] & 0x20

    @property
    def blink(self) -> bool:
        """True: attribute bit 7 blinks; False: it selects a bright background."""
        return bool(self.attr[0x10] & 0x08)

    def colour(self, index: int) -> tuple[int, int, int]:
        """The 8-bit RGB of text colour ``index`` (0-15): palette register -> DAC."""
        entry = self.dac[self.attr[index & 0x0F] & self.dac_mask]
        return tuple(v * 255 // 63 for v in entry)  # type: ignore[return-value]

    def state(self) -> dict[str, Any]:
        row, col = self.cursor()
        return {"mode": f"text {self.columns}x{self.rows}", "cursor": [row, col],
                "cursor_visible": self.cursor_visible(),
                "cursor_shape": [self.crtc[0x0A] & 0x1F, self.crtc[0x0B] & 0x1F],
                "start_address": self.start_address, "blink": self.blink,
                "crtc_index": self.crtc_index}
