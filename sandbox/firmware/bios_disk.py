"""int 13h: disk services for the boot drive (0x80, the ATA disk's image).

CHS addresses use the geometry QEMU's BIOS reports for small disks (16 heads, 63
sectors per track); the extended calls (AH=41h-48h) use LBA with a disk address
packet, as every modern boot loader does.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from sandbox.firmware.services import service
from sandbox.storage.base import SECTOR

if TYPE_CHECKING:
    from sandbox.firmware.bios import Firmware
    from sandbox.firmware.bios_call import BiosCall

HEADS, SECTORS_PER_TRACK = 16, 63
BOOT_DRIVE = 0x80
# Status codes returned in AH (the ones SeaBIOS returns in the same situations).
OK, BAD_COMMAND, SECTOR_NOT_FOUND, WRITE_PROTECTED = 0x00, 0x01, 0x04, 0x03
BAD_PARAMETER, PAST_THE_END = 0x01, 0x0C


def geometry(fw: "Firmware") -> tuple[int, int, int]:
    total = fw.disk_sectors()
    cylinders = max(1, min(1024, total // (HEADS * SECTORS_PER_TRACK)))
    return cylinders, HEADS, SECTORS_PER_TRACK


def _drive_ok(call: "BiosCall", fw: "Firmware") -> bool:
    if call.dl != BOOT_DRIVE or fw.disk is None:
        call.fail(BAD_COMMAND)
        return False
    return True


def transfer(call: "BiosCall", fw: "Firmware", lba: int, count: int, buffer: int, write: bool) -> bool:
    """Move ``count`` sectors between the disk and guest memory; False on a bad range."""
    if count == 0 or lba + count > fw.disk_sectors():
        call.fail(PAST_THE_END)
        return False
    if write:
        if fw.disk.readonly:
            call.fail(WRITE_PROTECTED)
            return False
        fw.disk_write(lba, fw.memory.read(buffer, count * SECTOR))
    else:
        fw.memory.write(buffer, fw.disk_read(lba, count))
    return True


@service(0x13, 0x00, "Reset the disk system.")
def reset(call: "BiosCall", fw: "Firmware") -> None:
    call.ok(ah=OK)


@service(0x13, 0x01, "Status of the last disk operation.")
def status(call: "BiosCall", fw: "Firmware") -> None:
    call.ok(ah=OK, al=OK)


def _chs(call: "BiosCall", fw: "Firmware", write: bool) -> None:
    if not _drive_ok(call, fw):
        return
    cyl = call.ch | ((call.cl & 0xC0) << 2)
    sector, head, count = call.cl & 0x3F, call.dh, call.al
    _c, heads, spt = geometry(fw)
    if sector == 0 or sector > spt or head >= heads:
        call.fail(BAD_PARAMETER)
        return
    lba = (cyl * heads + head) * spt + sector - 1
    if transfer(call, fw, lba, count, call.linear(call.es, call.bx), write):
        call.ok(ah=OK, al=count)


@service(0x13, 0x02, "Read AL sectors at cylinder/head/sector CH/DH/CL into ES:BX.")
def read_chs(call: "BiosCall", fw: "Firmware") -> None:
    _chs(call, fw, write=False)


@service(0x13, 0x03, "Write AL sectors from ES:BX at cylinder/head/sector CH/DH/CL.")
def write_chs(call: "BiosCall", fw: "Firmware") -> None:
    _chs(call, fw, write=True)


@service(0x13, 0x08, "Drive parameters: last cylinder, last head, sectors per track, drive count.")
def parameters(call: "BiosCall", fw: "Firmware") -> None:
    if not _drive_ok(call, fw):
        return
    cyls, heads, spt = geometry(fw)
    last = max(0, cyls - 2)          # the BIOS keeps the last cylinder for itself, as PC BIOSes do
    call.ok(ah=OK, ch=last & 0xFF, cl=((last >> 2) & 0xC0) | spt, dh=heads - 1, dl=1, bl=0)


@service(0x13, 0x15, "Disk type: a fixed disk, with its sector count in CX:DX.")
def disk_type(call: "BiosCall", fw: "Firmware") -> None:
    if not _drive_ok(call, fw):
        return
    cyls, heads, spt = geometry(fw)
    n = max(0, cyls - 1) * heads * spt           # what AH=08h's geometry addresses
    call.ok(ah=0x03, cx=n >> 16, dx=n & 0xFFFF)


@service(0x13, 0x41, "Extensions present? (BX=55AAh in, AA55h out; CX=1: packet calls).")
def extensions_check(call: "BiosCall", fw: "Firmware") -> None:
    if call.bx != 0x55AA or not _drive_ok(call, fw):
        call.fail(BAD_COMMAND)
        return
    call.ok(ah=0x30, bx=0xAA55, cx=0x0001)


def _packet(call: "BiosCall", fw: "Firmware", write: bool) -> None:
    if not _drive_ok(call, fw):
        return
    dap = call.linear(call.ds, call.si)
    size, _res, count, off, seg, lba = struct.unpack("<BBHHHQ", fw.memory.read(dap, 16))
    if size < 16:
        call.fail(BAD_COMMAND)
        return
    if transfer(call, fw, lba, count, call.linear(seg, off), write):
        call.ok(ah=OK)
    else:
        fw.memory.write_u16(dap + 2, 0)   # nothing transferred


@service(0x13, 0x42, "Extended read: the disk address packet at DS:SI gives LBA, count, buffer.")
def extended_read(call: "BiosCall", fw: "Firmware") -> None:
    _packet(call, fw, write=False)


@service(0x13, 0x43, "Extended write: the disk address packet at DS:SI gives LBA, count, buffer.")
def extended_write(call: "BiosCall", fw: "Firmware") -> None:
    _packet(call, fw, write=True)


@service(0x13, 0x48, "Extended drive parameters into the buffer at DS:SI.")
def extended_parameters(call: "BiosCall", fw: "Firmware") -> None:
    if not _drive_ok(call, fw):
        return
    cyls, heads, spt = geometry(fw)
    buf = call.linear(call.ds, call.si)
    size = max(26, min(fw.memory.read_u16(buf), 30))
    data = struct.pack("<HHIIIQH", 26, 0x0002, cyls, heads, spt, fw.disk_sectors(), SECTOR)
    fw.memory.write(buf, data[:size])
    call.ok(ah=OK)
