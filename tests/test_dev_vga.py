"""VGA text mode: the registers at 0x3C0-0x3DF and the screen read from guest RAM."""
from __future__ import annotations

import pytest

from sandbox.devices.base import DeviceContext
from sandbox.devices.vga import Vga

ATTR, ATTR_READ, MISC_W = 0x00, 0x01, 0x02
DAC_READ_INDEX, DAC_WRITE_INDEX, DAC_DATA = 0x07, 0x08, 0x09
MISC_R = 0x0C
CRTC_INDEX, CRTC_DATA, STATUS1 = 0x14, 0x15, 0x1A     # 0x3D4, 0x3D5, 0x3DA
TEXT = 0xB8000


class Ram:
    """Guest-physical memory, as the device sees it through ctx.read_guest."""

    def __init__(self) -> None:
        self.data = bytearray(0x100000)
        self.reads: list[tuple[int, int]] = []

    def read(self, addr: int, n: int) -> bytes:
        self.reads.append((addr, n))
        return bytes(self.data[addr:addr + n])

    def put(self, row: int, col: int, text: bytes, attr: int = 0x07) -> None:
        for i, ch in enumerate(text):
            at = TEXT + 2 * (row * 80 + col + i)
            self.data[at:at + 2] = bytes((ch, attr))


@pytest.fixture
def ram() -> Ram:
    return Ram()


@pytest.fixture
def vga(ram) -> Vga:
    return Vga("vga", DeviceContext(read_guest=ram.read))


def crtc(vga: Vga, index: int, value: int) -> None:
    vga.write(CRTC_INDEX, 1, index)
    vga.write(CRTC_DATA, 1, value)


def test_screen_is_25_rows_of_80_read_from_0xb8000(vga, ram):
    ram.put(0, 0, b"Hello, guest")
    ram.put(24, 70, b"last line!")
    screen = vga.screen()
    assert len(screen) == 25 and all(len(row) == 80 for row in screen)
    assert screen[0].startswith("Hello, guest")
    assert screen[24].endswith("last line!")
    assert ram.reads[-1] == (TEXT, 4000)


def test_cp437_is_decoded_to_unicode(vga, ram):
    ram.put(1, 0, bytes((0x00, 0x01, 0x03, 0x7F, 0xB0, 0xC9, 0xCD, 0xDB, 0xE1, 0x82)))
    assert vga.screen()[1][:10] == " ☺♥⌂░╔═█ßé"


def test_cells_carry_the_attributes(vga, ram):
    ram.put(2, 5, b"OK", attr=0x1E)                    # yellow on blue
    row = vga.cells()[2]
    assert row[5] == ("O", 0x1E) and row[6] == ("K", 0x1E)
    assert row[0] == (" ", 0x00)


def test_cursor_position_from_crtc_registers(vga):
    position = 12 * 80 + 40
    crtc(vga, 0x0F, position & 0xFF)
    crtc(vga, 0x0E, position >> 8)
    assert vga.cursor() == (12, 40)
    vga.write(CRTC_INDEX, 2, 0x0F | (5 << 8))          # outw(0x3D4, 0x050F): low byte 5
    vga.write(CRTC_INDEX, 2, 0x0E)                     # outw(0x3D4, 0x000E): high byte 0
    assert vga.cursor() == (0, 5)
    vga.write(CRTC_INDEX, 1, 0x0F)
    assert vga.read(CRTC_DATA, 1) == 5


def test_cursor_can_be_hidden(vga):
    assert vga.cursor_visible()
    crtc(vga, 0x0A, 0x20)                              # the OSDev "disable cursor"
    assert not vga.cursor_visible()
    crtc(vga, 0x0A, 0x0E)
    crtc(vga, 0x0B, 0x0F)
    assert vga.cursor_visible() and vga.state()["cursor_shape"] == [0x0E, 0x0F]


def test_start_address_scrolls_the_display(vga, ram):
    ram.put(1, 0, b"second line")
    crtc(vga, 0x0C, 0)
    crtc(vga, 0x0D, 80)                                # start one row further
    assert vga.screen()[0].startswith("second line")
    crtc(vga, 0x0F, 80)
    assert vga.cursor() == (0, 0)


def test_input_status_toggles_retrace_and_resets_the_attribute_flip_flop(vga):
    bits = [vga.read(STATUS1, 1) & 0x08 for _ in range(4)]
    assert bits == [0x08, 0, 0x08, 0]
    vga.write(ATTR, 1, 0x10)                           # index: mode control
    vga.read(STATUS1, 1)                               # flip-flop back to "index"
    vga.write(ATTR, 1, 0x10)
    vga.write(ATTR, 1, 0x00)                           # data: blink off
    assert vga.read(ATTR_READ, 1) == 0x00
    assert not vga.blink


def test_crtc_registers_0_to_7_are_write_protected(vga):
    crtc(vga, 0x01, 0x27)                              # try 40 columns
    vga.write(CRTC_INDEX, 1, 0x01)
    assert vga.read(CRTC_DATA, 1) == 0x4F              # bit 7 of 0x11 is set in mode 3
    crtc(vga, 0x11, 0x0E)                              # unprotect
    crtc(vga, 0x01, 0x27)
    assert vga.columns == 40


def test_dac_palette_and_text_colours(vga):
    assert vga.colour(14) == (255, 255, 85)            # yellow
    assert vga.colour(1) == (0, 0, 170)                # blue
    vga.write(DAC_WRITE_INDEX, 1, 0x01)                # palette register 1 points at DAC 1
    for component in (63, 0, 0):
        vga.write(DAC_DATA, 1, component)
    assert vga.colour(1) == (255, 0, 0)
    vga.write(DAC_READ_INDEX, 1, 0x01)
    assert [vga.read(DAC_DATA, 1) for _ in range(3)] == [63, 0, 0]


def test_misc_output_register(vga):
    assert vga.read(MISC_R, 1) == 0x67
    vga.write(MISC_W, 1, 0x63)
    assert vga.read(MISC_R, 1) == 0x63


def test_state_for_inspectors(vga):
    crtc(vga, 0x0F, 81)
    assert vga.state()["cursor"] == [1, 1]
    assert vga.state()["mode"] == "text 80x25"
