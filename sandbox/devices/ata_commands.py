"""The ATA commands this disk understands: one handler each, in a table.

A handler runs when the guest writes the Command register. It either finishes at
once (``disk.complete()``: DRDY, interrupt), fails (``disk.fail``/``disk.abort``:
ERR, interrupt), or opens a data transfer (``disk.start_transfer``: DRQ) whose
continuation runs each time the guest has moved one DRQ block through the data port.
"""
from __future__ import annotations

from sandbox.errors import ImageError

from typing import TYPE_CHECKING, Callable

from sandbox.devices.ata_identify import MAX_MULTIPLE, Geometry, identify_page
from sandbox.devices.ata_registers import COUNT, DEV_LBA, Transfer
from sandbox.storage.base import SECTOR

if TYPE_CHECKING:
    from sandbox.devices.ata import AtaDisk

LBA48_COMMANDS = {0x24, 0x29, 0x34, 0x39, 0x42, 0x27}
MULTIPLE_COMMANDS = {0xC4, 0xC5, 0x29, 0x39}


def identify(disk: "AtaDisk", code: int) -> None:
    page = identify_page(disk.total, disk.default_geometry, disk.geometry, disk.multiple,
                         disk.model, disk.serial, disk.firmware)
    disk.start_transfer("in", page, disk.finish_transfer)
    disk.interrupt()


def _block_size(disk: "AtaDisk", code: int) -> int | None:
    """Sectors per DRQ block, or None when READ/WRITE MULTIPLE is not enabled."""
    if code not in MULTIPLE_COMMANDS:
        return 1
    return disk.multiple or None


def read_sectors(disk: "AtaDisk", code: int) -> None:
    block = _block_size(disk, code)
    if not block:
        disk.abort()
        return
    span = disk.sector_range(code in LBA48_COMMANDS)
    if span is None:
        return
    lba, count = span
    try:
        data = disk.image.read(lba * SECTOR, count * SECTOR)
    except (OSError, ImageError):
        disk.abort()
        return
    disk.ctx.publish("disk.read", lba=lba, count=count)
    disk.xfer = Transfer(lba, count, block, code in LBA48_COMMANDS, data)
    _next_read_block(disk)


def _next_read_block(disk: "AtaDisk") -> None:
    x = disk.xfer
    n = min(x.block, x.remaining)
    chunk = x.data[x.offset:x.offset + n * SECTOR]
    x.offset += n * SECTOR
    x.lba += n
    x.remaining -= n
    disk.tf.regs[COUNT] = x.remaining & 0xFF
    disk.tf.set_address(x.lba, x.lba48, disk.geometry)
    disk.start_transfer("in", chunk, lambda: _after_read_block(disk))
    disk.interrupt()


def _after_read_block(disk: "AtaDisk") -> None:
    if disk.xfer is not None and disk.xfer.remaining:
        _next_read_block(disk)
    else:
        disk.finish_transfer()


def write_sectors(disk: "AtaDisk", code: int) -> None:
    block = _block_size(disk, code)
    if disk.image.readonly or not block:
        disk.abort()
        return
    span = disk.sector_range(code in LBA48_COMMANDS)
    if span is None:
        return
    lba, count = span
    disk.xfer = Transfer(lba, count, block, code in LBA48_COMMANDS)
    disk.start_transfer("out", min(block, count) * SECTOR, lambda: _after_write_block(disk))
    # No interrupt: the guest sends the first block as soon as it sees DRQ.


def _after_write_block(disk: "AtaDisk") -> None:
    x = disk.xfer
    data = disk.transfer_buffer()
    try:
        disk.image.write(x.lba * SECTOR, data)
    except (OSError, ImageError):              # PermissionError included; a corrupt image
        disk.abort()
        return
    n = len(data) // SECTOR
    disk.ctx.publish("disk.write", lba=x.lba, count=n)
    x.lba += n
    x.remaining -= n
    disk.tf.regs[COUNT] = x.remaining & 0xFF
    disk.tf.set_address(x.lba, x.lba48, disk.geometry)
    if x.remaining:
        disk.start_transfer("out", min(x.block, x.remaining) * SECTOR, lambda: _after_write_block(disk))
    else:
        disk.finish_transfer()
    disk.interrupt()                           # the block is on disk: acknowledge it


def flush_cache(disk: "AtaDisk", code: int) -> None:
    try:
        disk.image.flush()
    except OSError:
        disk.abort()
        return
    disk.ctx.publish("disk.flush")
    disk.complete()


def read_verify(disk: "AtaDisk", code: int) -> None:
    if disk.sector_range(code in LBA48_COMMANDS) is not None:
        disk.complete()


def accept(disk: "AtaDisk", code: int) -> None:
    disk.complete()


def initialize_device_parameters(disk: "AtaDisk", code: int) -> None:
    heads, sectors = (disk.tf.select & 0x0F) + 1, disk.tf.regs[COUNT]
    if sectors == 0:
        disk.abort()
        return
    disk.geometry = Geometry.for_capacity(disk.total, heads, sectors)
    disk.complete()


def set_multiple_mode(disk: "AtaDisk", code: int) -> None:
    count = disk.tf.regs[COUNT]
    if count > MAX_MULTIPLE or count & (count - 1):
        disk.abort()
        return
    disk.multiple = count
    disk.complete()


def execute_diagnostic(disk: "AtaDisk", code: int) -> None:
    disk.signature()
    disk.error = 0x01                          # device 0 passed, device 1 absent
    disk.complete()


def check_power_mode(disk: "AtaDisk", code: int) -> None:
    disk.tf.regs[COUNT] = 0xFF                 # active or idle
    disk.complete()


def read_native_max(disk: "AtaDisk", code: int) -> None:
    lba48 = code in LBA48_COMMANDS
    if not lba48:
        disk.tf.select |= DEV_LBA
    disk.tf.set_address(max(disk.total - 1, 0), lba48, disk.geometry)
    disk.complete()


Handler = Callable[["AtaDisk", int], None]

# The command set: code -> (what it does, handler).
COMMANDS: dict[int, tuple[str, Handler]] = {
    0xEC: ("IDENTIFY DEVICE: 512 bytes describing the disk (model, capacity, features)", identify),
    0x20: ("READ SECTORS: read 1-256 sectors, one interrupt per sector", read_sectors),
    0x21: ("READ SECTORS (without retry)", read_sectors),
    0x24: ("READ SECTORS EXT: 48-bit address", read_sectors),
    0xC4: ("READ MULTIPLE: one interrupt per block of sectors", read_sectors),
    0x29: ("READ MULTIPLE EXT", read_sectors),
    0x30: ("WRITE SECTORS: write 1-256 sectors, one interrupt per sector", write_sectors),
    0x31: ("WRITE SECTORS (without retry)", write_sectors),
    0x34: ("WRITE SECTORS EXT: 48-bit address", write_sectors),
    0xC5: ("WRITE MULTIPLE: one interrupt per block of sectors", write_sectors),
    0x39: ("WRITE MULTIPLE EXT", write_sectors),
    0xE7: ("FLUSH CACHE: make every written sector durable", flush_cache),
    0xEA: ("FLUSH CACHE EXT", flush_cache),
    0x40: ("READ VERIFY SECTORS: check sectors exist without moving data", read_verify),
    0x41: ("READ VERIFY SECTORS (without retry)", read_verify),
    0x42: ("READ VERIFY SECTORS EXT", read_verify),
    0xEF: ("SET FEATURES: transfer mode, caching...; accepted", accept),
    0x91: ("INITIALIZE DEVICE PARAMETERS: set the CHS geometry used for CHS addresses", initialize_device_parameters),
    0xC6: ("SET MULTIPLE MODE: sectors per block for READ/WRITE MULTIPLE", set_multiple_mode),
    0x90: ("EXECUTE DEVICE DIAGNOSTIC: self-test; error register 1 means passed", execute_diagnostic),
    0xE5: ("CHECK POWER MODE: the disk is always spinning", check_power_mode),
    0xF8: ("READ NATIVE MAX ADDRESS: the last sector's address", read_native_max),
    0x27: ("READ NATIVE MAX ADDRESS EXT", read_native_max),
    0x70: ("SEEK: nothing to move on a virtual disk", accept),
    **{code: ("RECALIBRATE: nothing to move on a virtual disk", accept) for code in range(0x10, 0x20)},
    **{code: ("IDLE/STANDBY: power management, accepted", accept)
       for code in (0xE0, 0xE1, 0xE2, 0xE3, 0x94, 0x95, 0x96, 0x97)},
}
