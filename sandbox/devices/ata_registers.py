"""The ATA task file: the registers a driver fills in before writing a command, and
how they name a sector (LBA28, LBA48 or cylinder/head/sector)."""
from __future__ import annotations

from dataclasses import dataclass, field

from sandbox.devices.ata_identify import Geometry

# Command block offsets (from 0x1F0).
DATA, ERROR_FEATURES, COUNT, LBA_LOW, LBA_MID, LBA_HIGH, DEVICE, STATUS_COMMAND = range(8)
# Status bits.
BSY, DRDY, DF, DSC, DRQ, CORR, IDX, ERR = 0x80, 0x40, 0x20, 0x10, 0x08, 0x04, 0x02, 0x01
# Error bits.
ABRT, IDNF = 0x04, 0x10
# Device register: bit 6 selects LBA addressing, bit 4 the device.
DEV_LBA, DEV_SELECT = 0x40, 0x10
# Device control register (control block): interrupt disable, software reset, high-order byte.
NIEN, SRST, HOB = 0x02, 0x04, 0x80


@dataclass
class TaskFile:
    """One device's view of the task-file registers. Both devices latch every
    register write, but only the one that runs a command updates its copy."""
    regs: list[int] = field(default_factory=lambda: [0] * 8)   # current values, offsets 1-5
    hob: list[int] = field(default_factory=lambda: [0] * 8)    # the values written before (LBA48)
    select: int = 0xA0                                          # the Device register

    def signature(self, cylinder: int) -> None:
        """What a device shows after reset or diagnostics: count 1, sector 1, and
        cylinder 0 for an ATA disk (0xFFFF where no device answers)."""
        self.select = 0xA0
        self.regs[COUNT] = self.regs[LBA_LOW] = 1
        self.regs[LBA_MID] = self.regs[LBA_HIGH] = cylinder

    def address(self, lba48: bool, geometry: Geometry) -> tuple[int | None, int]:
        """(first sector, sector count); the sector is None when a CHS address names
        no sector of the geometry. A count of 0 means 256 (65536 with LBA48)."""
        r, h, select = self.regs, self.hob, self.select
        if lba48:
            lba = (r[LBA_LOW] | r[LBA_MID] << 8 | r[LBA_HIGH] << 16
                   | h[LBA_LOW] << 24 | h[LBA_MID] << 32 | h[LBA_HIGH] << 40)
            return lba, (r[COUNT] | h[COUNT] << 8) or 65536
        count = r[COUNT] or 256
        if select & DEV_LBA:
            return r[LBA_LOW] | r[LBA_MID] << 8 | r[LBA_HIGH] << 16 | (select & 0x0F) << 24, count
        g = geometry
        cylinder, head, sector = r[LBA_MID] | r[LBA_HIGH] << 8, select & 0x0F, r[LBA_LOW]
        if not 1 <= sector <= g.sectors or head >= g.heads:
            return None, count
        return (cylinder * g.heads + head) * g.sectors + sector - 1, count

    def set_address(self, lba: int, lba48: bool, geometry: Geometry) -> None:
        """Point the registers at ``lba`` in the addressing mode in use."""
        r = self.regs
        if lba48 or self.select & DEV_LBA:
            r[LBA_LOW], r[LBA_MID], r[LBA_HIGH] = lba & 0xFF, (lba >> 8) & 0xFF, (lba >> 16) & 0xFF
            if lba48:
                self.hob[LBA_LOW], self.hob[LBA_MID], self.hob[LBA_HIGH] = \
                    (lba >> 24) & 0xFF, (lba >> 32) & 0xFF, (lba >> 40) & 0xFF
            else:
                self.select = (self.select & 0xF0) | ((lba >> 24) & 0x0F)
            return
        cylinder, rest = divmod(lba, geometry.heads * geometry.sectors)
        head, sector = divmod(rest, geometry.sectors)
        r[LBA_LOW], r[LBA_MID], r[LBA_HIGH] = sector + 1, cylinder & 0xFF, (cylinder >> 8) & 0xFF
        self.select = (self.select & 0xF0) | head


@dataclass
class Transfer:
    """A multi-sector READ or WRITE in progress."""
    lba: int              # next sector to move
    remaining: int        # sectors left
    block: int            # sectors per DRQ block (1, or the multiple count)
    lba48: bool
    data: bytes = b""     # read commands: every sector, read at once
    offset: int = 0
