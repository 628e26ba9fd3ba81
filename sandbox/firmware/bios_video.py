"""int 10h: video services on the 80x25 colour text screen at 0xB8000.

The cursor lives in the BIOS data area (0x450) as on a PC, and the hardware cursor is
moved through the VGA CRTC ports, so guests and the VGA device model agree.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.firmware.services import service

if TYPE_CHECKING:
    from sandbox.firmware.bios import Firmware
    from sandbox.firmware.bios_call import BiosCall

COLS, ROWS = 80, 25
TEXT = 0xB8000
BDA_CURSOR = 0x450
DEFAULT_ATTR = 0x07


def get_cursor(fw: "Firmware") -> tuple[int, int]:
    col, row = fw.memory.read(BDA_CURSOR, 2)
    return row, col


def set_cursor(fw: "Firmware", row: int, col: int) -> None:
    fw.memory.write(BDA_CURSOR, bytes((col, row)))
    pos = row * COLS + col
    for index, value in ((0x0E, pos >> 8), (0x0F, pos & 0xFF)):
        fw.port_write(0x3D4, index)
        fw.port_write(0x3D5, value)


def scroll_up(fw: "Firmware", lines: int, attr: int, top: int = 0, left: int = 0,
              bottom: int = ROWS - 1, right: int = COLS - 1) -> None:
    height, width = bottom - top + 1, right - left + 1
    if lines == 0 or lines > height:
        lines = height
    blank = bytes((0x20, attr)) * width
    for row in range(top, bottom + 1):
        src = row + lines
        data = fw.memory.read(TEXT + (src * COLS + left) * 2, width * 2) if src <= bottom else blank
        fw.memory.write(TEXT + (row * COLS + left) * 2, data)


def teletype(fw: "Firmware", ch: int, attr: int | None = None) -> None:
    row, col = get_cursor(fw)
    if ch == 0x0D:
        col = 0
    elif ch == 0x0A:
        row += 1
    elif ch == 0x08:
        col = max(0, col - 1)
    elif ch == 0x07:
        pass                       # bell: no speaker
    else:
        addr = TEXT + (row * COLS + col) * 2
        if attr is None:
            fw.memory.write(addr, bytes((ch,)))
        else:
            fw.memory.write(addr, bytes((ch, attr)))
        col += 1
        if col == COLS:
            col, row = 0, row + 1
    if row == ROWS:
        scroll_up(fw, 1, DEFAULT_ATTR)
        row = ROWS - 1
    set_cursor(fw, row, col)


def clear_screen(fw: "Firmware") -> None:
    fw.memory.write(TEXT, bytes((0x20, DEFAULT_ATTR)) * (COLS * ROWS))
    set_cursor(fw, 0, 0)


@service(0x10, 0x00, "Set video mode: the text modes clear the 80x25 screen.")
def set_mode(call: "BiosCall", fw: "Firmware") -> None:
    fw.memory.write(0x449, bytes((call.al & 0x7F,)))
    if not call.al & 0x80:
        clear_screen(fw)


@service(0x10, 0x01, "Set the cursor shape (start and end scan lines).")
def set_cursor_shape(call: "BiosCall", fw: "Firmware") -> None:
    fw.memory.write_u16(0x460, call.cx)


@service(0x10, 0x02, "Move the cursor to row DH, column DL.")
def move_cursor(call: "BiosCall", fw: "Firmware") -> None:
    set_cursor(fw, min(call.dh, ROWS - 1), min(call.dl, COLS - 1))


@service(0x10, 0x03, "Read the cursor position (DH, DL) and shape (CX).")
def read_cursor(call: "BiosCall", fw: "Firmware") -> None:
    row, col = get_cursor(fw)
    call.set(dh=row, dl=col, cx=fw.memory.read_u16(0x460))


@service(0x10, 0x05, "Select the active display page (only page 0 exists).")
def select_page(call: "BiosCall", fw: "Firmware") -> None:
    fw.memory.write(0x462, b"\x00")


@service(0x10, 0x06, "Scroll a window up by AL lines (AL=0 clears it) with attribute BH.")
def scroll_window_up(call: "BiosCall", fw: "Firmware") -> None:
    scroll_up(fw, call.al, call.bh, call.ch, call.cl, min(call.dh, ROWS - 1), min(call.dl, COLS - 1))


@service(0x10, 0x07, "Scroll a window down by AL lines (AL=0 clears it) with attribute BH.")
def scroll_window_down(call: "BiosCall", fw: "Firmware") -> None:
    top, left, bottom, right = call.ch, call.cl, min(call.dh, ROWS - 1), min(call.dl, COLS - 1)
    height, width = bottom - top + 1, right - left + 1
    lines = call.al if 0 < call.al <= height else height
    blank = bytes((0x20, call.bh)) * width
    for row in range(bottom, top - 1, -1):
        src = row - lines
        data = fw.memory.read(TEXT + (src * COLS + left) * 2, width * 2) if src >= top else blank
        fw.memory.write(TEXT + (row * COLS + left) * 2, data)


@service(0x10, 0x08, "Read the character and attribute at the cursor.")
def read_char(call: "BiosCall", fw: "Firmware") -> None:
    row, col = get_cursor(fw)
    ch, attr = fw.memory.read(TEXT + (row * COLS + col) * 2, 2)
    call.set(al=ch, ah=attr)


@service(0x10, 0x09, "Write character AL with attribute BL, CX times, at the cursor.")
def write_char_attr(call: "BiosCall", fw: "Firmware") -> None:
    row, col = get_cursor(fw)
    start = row * COLS + col
    count = min(call.cx, COLS * ROWS - start)
    fw.memory.write(TEXT + start * 2, bytes((call.al, call.bl)) * count)


@service(0x10, 0x0A, "Write character AL, CX times, at the cursor, keeping attributes.")
def write_char(call: "BiosCall", fw: "Firmware") -> None:
    row, col = get_cursor(fw)
    start = row * COLS + col
    for i in range(min(call.cx, COLS * ROWS - start)):
        fw.memory.write(TEXT + (start + i) * 2, bytes((call.al,)))


@service(0x10, 0x0E, "Teletype output: print AL at the cursor and advance (CR, LF, BS handled).")
def teletype_output(call: "BiosCall", fw: "Firmware") -> None:
    teletype(fw, call.al)


@service(0x10, 0x0F, "Get the video mode (AL), columns (AH) and page (BH).")
def get_mode(call: "BiosCall", fw: "Firmware") -> None:
    call.set(al=fw.memory.read(0x449, 1)[0], ah=COLS, bh=0)


@service(0x10, 0x12, "Alternate function select: report a colour EGA/VGA with 256 KiB.")
def alt_select(call: "BiosCall", fw: "Firmware") -> None:
    if call.bl == 0x10:
        call.set(bh=0, bl=3, ch=0, cl=9)


@service(0x10, 0x13, "Write the string at ES:BP (CX characters) at row DH, column DL.")
def write_string(call: "BiosCall", fw: "Firmware") -> None:
    mode, addr = call.al, call.linear(call.es, call.bp)
    data = fw.memory.read(addr, call.cx * (2 if mode & 2 else 1))
    saved = get_cursor(fw)
    set_cursor(fw, call.dh, call.dl)
    for i in range(call.cx):
        ch, attr = (data[2 * i], data[2 * i + 1]) if mode & 2 else (data[i], call.bl)
        teletype(fw, ch, attr if ch not in (0x0D, 0x0A, 0x08, 0x07) else None)
    if not mode & 1:
        set_cursor(fw, *saved)


@service(0x10, 0x1A, "Display combination code: a VGA with colour monitor.")
def display_combination(call: "BiosCall", fw: "Firmware") -> None:
    if call.al == 0:
        call.set(al=0x1A, bl=0x08, bh=0)
