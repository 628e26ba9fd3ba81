"""System BIOS services: equipment, memory size and map, keyboard, clock, boot."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sandbox.firmware.services import service

if TYPE_CHECKING:
    from sandbox.firmware.bios import Firmware
    from sandbox.firmware.bios_call import BiosCall

SMAP = 0x534D4150   # 'SMAP'
E820_USABLE, E820_RESERVED = 1, 2


def e820_map(memory_bytes: int) -> list[tuple[int, int, int]]:
    """(base, length, type) as the firmware reports guest RAM. Shared with Multiboot."""
    return [
        (0x00000, 0x9FC00, E820_USABLE),
        (0x9FC00, 0x00400, E820_RESERVED),     # extended BIOS data area
        (0xF0000, 0x10000, E820_RESERVED),     # BIOS ROM
        (0x100000, max(0, memory_bytes - 0x100000), E820_USABLE),
    ]


@service(0x11, None, "Equipment list: one serial port, 80x25 colour video.")
def equipment(call: "BiosCall", fw: "Firmware") -> None:
    call.set(ax=fw.memory.read_u16(0x410))


@service(0x12, None, "Conventional memory size in KiB (AX).")
def low_memory(call: "BiosCall", fw: "Firmware") -> None:
    call.set(ax=fw.memory.read_u16(0x413))


@service(0x15, 0x24, "A20 gate: AL=0 disable, 1 enable, 2 status, 3 support.")
def a20(call: "BiosCall", fw: "Firmware") -> None:
    if call.al in (0, 1):
        fw.set_a20(bool(call.al))
        call.ok(ah=0)
    elif call.al == 2:
        call.ok(ah=0, al=int(fw.memory.a20))
    elif call.al == 3:
        call.ok(ah=0, bx=0x0002)      # fast A20 via port 0x92
    else:
        call.fail(0x86)


@service(0x15, 0x86, "Wait CX:DX microseconds (returns at once: guest time is virtual).")
def wait(call: "BiosCall", fw: "Firmware") -> None:
    call.ok(ah=0)


@service(0x15, 0x88, "Extended memory above 1 MiB in KiB (AX, at most 64 MiB).")
def extended_memory(call: "BiosCall", fw: "Firmware") -> None:
    call.ok(ax=min(0xFC00, max(0, fw.memory_bytes - 0x100000) >> 10))


@service(0x15, 0xC0, "System configuration table: not provided.")
def config_table(call: "BiosCall", fw: "Firmware") -> None:
    call.fail(0x86)


@service(0x15, 0xE8, "Memory map (AX=E820h) and memory size (AX=E801h).")
def memory_map(call: "BiosCall", fw: "Firmware") -> None:
    if call.al == 0x01:      # E801: KiB between 1 and 16 MiB, 64 KiB blocks above 16 MiB
        above1 = max(0, fw.memory_bytes - 0x100000)
        low = min(above1 >> 10, 15 * 1024)
        high = max(0, fw.memory_bytes - 0x1000000) >> 16
        call.ok(ax=low, bx=high, cx=low, dx=high)
        return
    if call.al != 0x20 or call.edx != SMAP or (call.ecx & 0xFFFFFFFF) < 20:
        call.fail(0x86)
        return
    entries = e820_map(fw.memory_bytes)
    index = call.ebx
    if index >= len(entries):
        call.fail(0x86)
        return
    base, length, kind = entries[index]
    fw.memory.write(call.linear(call.es, call.di), struct.pack("<QQI", base, length, kind))
    nxt = index + 1 if index + 1 < len(entries) else 0
    call.ok(eax=SMAP, ecx=20, ebx=nxt)


def _key(fw: "Firmware", consume: bool) -> int | None:
    byte = fw.serial_key(consume)
    if byte is None:
        return None
    if byte == 0x0A:        # serial consoles send LF; a PC keyboard sends CR
        byte = 0x0D
    scancode = {0x0D: 0x1C, 0x08: 0x0E, 0x1B: 0x01, 0x20: 0x39, 0x09: 0x0F}.get(byte, 0)
    return (scancode << 8) | byte


@service(0x16, 0x00, "Wait for a key (fed from the serial console) and return it in AX.")
def read_key(call: "BiosCall", fw: "Firmware") -> None:
    key = _key(fw, consume=True)
    if key is None:
        fw.keyboard_wait(True)          # the ROM routine idles with HLT and asks again
        return
    fw.keyboard_wait(False)
    call.set(ax=key)


@service(0x16, 0x01, "Is a key waiting? ZF=1 if not; else AX = the key, left in the buffer.")
def check_key(call: "BiosCall", fw: "Firmware") -> None:
    fw.keyboard_wait(False)
    key = _key(fw, consume=False)
    call.set_zf(key is None)
    if key is not None:
        call.set(ax=key)


@service(0x16, 0x02, "Shift flags (AL): none pressed.")
def shift_flags(call: "BiosCall", fw: "Firmware") -> None:
    fw.keyboard_wait(False)
    call.set(al=0)


@service(0x16, 0x10, "Extended keyboard read: as AH=00h.")
def read_key_ext(call: "BiosCall", fw: "Firmware") -> None:
    read_key(call, fw)


@service(0x16, 0x11, "Extended keystroke check: as AH=01h.")
def check_key_ext(call: "BiosCall", fw: "Firmware") -> None:
    check_key(call, fw)


@service(0x16, None, "Other keyboard functions: ignored.")
def keyboard_other(call: "BiosCall", fw: "Firmware") -> None:
    fw.keyboard_wait(False)


@service(0x1A, 0x00, "Timer ticks since midnight (CX:DX, 18.2 per second) from the BIOS data area.")
def ticks(call: "BiosCall", fw: "Firmware") -> None:
    count = fw.memory.read_u32(0x46C)
    call.set(cx=count >> 16, dx=count & 0xFFFF, al=0)
    call.set_cf(False)


def _bcd(n: int) -> int:
    return ((n // 10) << 4) | (n % 10)


@service(0x1A, 0x02, "Real-time clock time (CH hours, CL minutes, DH seconds, BCD).")
def rtc_time(call: "BiosCall", fw: "Firmware") -> None:
    seconds = fw.clock_ns() // 1_000_000_000
    call.ok(ch=_bcd(seconds // 3600 % 24), cl=_bcd(seconds // 60 % 60), dh=_bcd(seconds % 60), dl=0)


@service(0x1A, 0x04, "Real-time clock date (CX century+year, DH month, DL day, BCD).")
def rtc_date(call: "BiosCall", fw: "Firmware") -> None:
    call.ok(cx=0x2026, dh=0x01, dl=0x01)


@service(0x18, None, "No bootable device: the machine stops.")
def no_boot(call: "BiosCall", fw: "Firmware") -> None:
    fw.power_off("no bootable device (int 18h)", 1)


@service(0x19, None, "Bootstrap loader: reboot from the disk.")
def bootstrap(call: "BiosCall", fw: "Firmware") -> None:
    fw.request_reset()
