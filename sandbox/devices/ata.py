"""An ATA disk on the primary IDE channel, programmed I/O only (0x1F0-0x1F7, 0x3F6, IRQ 14).

The guest writes an address and a sector count to the task-file registers, then a
command (see ``ata_commands``); data moves 512 bytes per sector through the 16- or
32-bit data port while DRQ is set, and the disk interrupts once per DRQ block.
Written sectors go to the image as each block arrives, so a sector the guest saw
acknowledged is in the file.

Only device 0 exists. As in QEMU, while device 1 is selected Status and Error read
0, commands are ignored and after a reset its signature reads 0xFF/0xFF (no device);
with no disk at all every register reads 0.
"""
from __future__ import annotations

from typing import Any, Callable

from sandbox.devices.ata_commands import COMMANDS
from sandbox.devices.ata_identify import MAX_MULTIPLE, Geometry
from sandbox.devices.ata_registers import (
    ABRT, BSY, DATA, DEV_SELECT, DEVICE, DRDY, DRQ, DSC, ERR, ERROR_FEATURES, HOB, IDNF, NIEN,
    SRST, STATUS_COMMAND, TaskFile, Transfer)
from sandbox.devices.base import Device, DeviceContext
from sandbox.storage.base import SECTOR, BlockImage


class AtaControl(Device):
    """The one-port control block: Alternate Status (read) and Device Control (write)."""

    description = "The ATA control block: alternate status without acknowledging the interrupt, and device reset and interrupt enable."

    def __init__(self, name: str, ctx: DeviceContext | None, disk: "AtaDisk") -> None:
        super().__init__(name, ctx)
        self.disk = disk

    def read(self, offset: int, size: int) -> int:
        return self.disk.status_value()

    def write(self, offset: int, size: int, value: int) -> None:
        self.disk.write_control(value & 0xFF)


class AtaDisk(Device):
    description = "An ATA (IDE) hard disk on the primary channel, moving sectors between the guest and a disk image by programmed I/O."

    def __init__(self, name: str, ctx: DeviceContext | None, image: BlockImage | None,
                 irq: int = 14, model: str = "SANDBOX HARDDISK", serial: str = "SB0001",
                 firmware: str = "0.1.0") -> None:
        super().__init__(name, ctx)
        self.image = image
        self.irq = self.ctx.irq(irq)
        self.model, self.serial, self.firmware = model, serial, firmware
        self.total = image.size() // SECTOR if image is not None else 0
        self.default_geometry = Geometry.for_capacity(self.total)
        self.control = AtaControl(f"{name}.control", self.ctx, self)
        self.devctl = 0
        self._power_on()

    def _power_on(self) -> None:
        self.files = (TaskFile(), TaskFile())    # device 0 (this disk) and device 1 (absent)
        self.unit = 0                  # the selected device
        self.error = 0x01              # diagnostic passed
        self.status = DRDY | DSC if self.present else 0
        self.geometry = self.default_geometry
        self.multiple = MAX_MULTIPLE   # as QEMU: READ/WRITE MULTIPLE work without SET MULTIPLE
        self.signature()
        self.stop_transfer()
        self._intrq = False
        self._update_line()

    def reset(self) -> None:
        self.devctl = 0
        self._power_on()

    def signature(self) -> None:
        self.files[0].signature(0x00)
        self.files[1].signature(0xFF)

    @property
    def tf(self) -> TaskFile:
        """Device 0's registers: the ones commands read and update."""
        return self.files[0]

    @property
    def present(self) -> bool:
        return self.image is not None

    @property
    def selected(self) -> bool:
        """Device 0 (the only one) is selected and exists."""
        return self.present and self.unit == 0

    # --- registers ---------------------------------------------------------------------
    def status_value(self) -> int:
        return self.status if self.selected else 0

    def read(self, offset: int, size: int) -> int:
        if offset == DATA:
            return self._read_data(size)
        if not self.present:
            return 0
        if offset == STATUS_COMMAND:
            value = self.status_value()
            self._intrq = False                # reading Status acknowledges the interrupt
            self._update_line()
            return value
        if offset == ERROR_FEATURES:
            return self.error if self.selected else 0
        f = self.files[self.unit]
        if offset == DEVICE:
            return f.select
        return (f.hob if self.devctl & HOB else f.regs)[offset]

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == DATA:
            self._write_data(size, value)
            return
        value &= 0xFF
        self.devctl &= ~HOB                    # any task-file write clears HOB
        if offset == STATUS_COMMAND:
            self._intrq = False
            self._update_line()
            self._execute(value)
        elif offset == DEVICE:
            for f in self.files:
                f.select = value | 0xA0
            self.unit = 1 if value & DEV_SELECT else 0
        else:
            for f in self.files:
                f.hob[offset] = f.regs[offset]
                f.regs[offset] = value

    def write_control(self, value: int) -> None:
        old, self.devctl = self.devctl, value
        if value & SRST and not old & SRST:
            self.stop_transfer()
            if self.present:
                self.status = BSY              # held in reset while SRST stays set
        elif old & SRST and not value & SRST:
            self.signature()                   # reset done; no interrupt after SRST
            self.unit = 0
            self.error = 0x01
            self.status = DRDY | DSC if self.present else 0
            self._intrq = False
        self._update_line()

    # --- the data port -----------------------------------------------------------------
    def stop_transfer(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._dir: str | None = None
        self._on_done: Callable[[], None] | None = None
        self.xfer: Transfer | None = None

    def start_transfer(self, direction: str, data: bytes | int, on_done: Callable[[], None]) -> None:
        """Open a DRQ block: ``data`` for the guest to read ("in"), or a buffer of
        that many bytes for it to fill ("out"); ``on_done`` runs when it is moved."""
        self._buf = bytearray(data)
        self._pos = 0
        self._dir = direction
        self._on_done = on_done
        self.status = DRDY | DSC | DRQ

    def finish_transfer(self) -> None:
        self.stop_transfer()
        self.status = DRDY | DSC

    def transfer_buffer(self) -> bytes:
        return bytes(self._buf)

    def _read_data(self, size: int) -> int:
        if size == 1 or not self.status & DRQ or self._dir != "in" or self._pos + size > len(self._buf):
            return 0 if size > 1 else 0xFF
        value = int.from_bytes(self._buf[self._pos:self._pos + size], "little")
        self._pos += size
        if self._pos >= len(self._buf):
            self._block_done()
        return value

    def _write_data(self, size: int, value: int) -> None:
        if size == 1 or not self.status & DRQ or self._dir != "out" or self._pos + size > len(self._buf):
            return
        self._buf[self._pos:self._pos + size] = value.to_bytes(size, "little")
        self._pos += size
        if self._pos >= len(self._buf):
            self._block_done()

    def _block_done(self) -> None:
        self.status &= ~DRQ
        done, self._on_done = self._on_done, None
        if done is not None:
            done()

    # --- commands and their outcomes -------------------------------------------------------
    def _execute(self, code: int) -> None:
        if not self.selected or self.status & (BSY | DRQ):
            return                             # absent device, or busy: ignored (QEMU)
        self.error = 0
        entry = COMMANDS.get(code)
        if entry is None:
            self.abort()
        else:
            entry[1](self, code)

    def interrupt(self) -> None:
        self._intrq = True
        self._update_line()

    def _update_line(self) -> None:
        level = self._intrq and not self.devctl & NIEN
        if level and not self.irq.level:
            self.irq.raise_()
        elif not level and self.irq.level:
            self.irq.lower()

    def complete(self) -> None:
        self.status = DRDY | DSC
        self.interrupt()

    def fail(self, error: int) -> None:
        self.stop_transfer()
        self.status = DRDY | ERR
        self.error = error
        self.interrupt()

    def abort(self) -> None:
        self.fail(ABRT)

    def sector_range(self, lba48: bool) -> tuple[int, int] | None:
        """The (first sector, count) the task file names, or None after failing the
        command with IDNF because no such sectors exist."""
        lba, count = self.tf.address(lba48, self.geometry)
        if lba is None or lba + count > self.total:
            self.fail(IDNF)
            return None
        return lba, count

    def state(self) -> dict[str, Any]:
        lba, _ = self.tf.address(False, self.geometry)
        return {"present": self.present, "status": self.status, "error": self.error,
                "device": self.tf.select, "selected_device": self.unit, "count": self.tf.regs[2],
                "address": lba, "sectors": self.total, "multiple": self.multiple,
                "readonly": bool(self.image and self.image.readonly),
                "device_control": self.devctl, "interrupt": self._intrq,
                "transfer": None if self._dir is None else {"direction": self._dir,
                                                            "byte": self._pos, "of": len(self._buf)},
                "geometry": (self.geometry.cylinders, self.geometry.heads, self.geometry.sectors),
                "image": getattr(self.image, "path", None)}
