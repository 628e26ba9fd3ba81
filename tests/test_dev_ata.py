"""The ATA PIO disk, driven through 0x1F0-0x1F7 and 0x3F6 the way a PIO driver does."""
from __future__ import annotations

import struct

import pytest

from sandbox.devices.ata import AtaDisk
from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.storage.raw import RawImage

DATA, ERROR, COUNT, LBA0, LBA1, LBA2, DEVICE, STATUS = range(8)
BSY, DRDY, DSC, DRQ, ERR = 0x80, 0x40, 0x10, 0x08, 0x01
ABRT, IDNF = 0x04, 0x10
SECTORS = 2048                                  # a 1 MiB disk


class SpyImage(RawImage):
    def __init__(self, path: str, readonly: bool = False) -> None:
        super().__init__(path, readonly)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()


class Rig:
    def __init__(self, image: RawImage | None) -> None:
        self.events: list[tuple[str, dict]] = []
        self.irq_edges = 0

        def set_level(_n: int, level: bool) -> None:
            self.irq_edges += level

        ctx = DeviceContext(publish=lambda kind, **d: self.events.append((kind, d)),
                            irq=lambda n: IrqLine(n, set_level))
        self.image = image
        self.disk = AtaDisk("ata0", ctx, image)

    def out(self, reg: int, value: int) -> None:
        self.disk.write(reg, 1, value)

    def inb(self, reg: int) -> int:
        return self.disk.read(reg, 1)

    @property
    def irq(self) -> bool:
        return self.disk.irq.level

    def alt_status(self) -> int:
        return self.disk.control.read(0, 1)

    def control(self, value: int) -> None:
        self.disk.control.write(0, 1, value)

    def lba28(self, command: int, lba: int, count: int) -> None:
        self.out(DEVICE, 0xE0 | (lba >> 24 & 0x0F))      # LBA, device 0
        self.out(COUNT, count & 0xFF)
        self.out(LBA0, lba & 0xFF)
        self.out(LBA1, lba >> 8 & 0xFF)
        self.out(LBA2, lba >> 16 & 0xFF)
        self.out(STATUS, command)

    def read_block(self, words: int = 256, size: int = 2) -> bytes:
        return b"".join(self.disk.read(DATA, size).to_bytes(size, "little") for _ in range(words * 2 // size))

    def write_block(self, data: bytes, size: int = 2) -> None:
        for i in range(0, len(data), size):
            self.disk.write(DATA, size, int.from_bytes(data[i:i + size], "little"))

    def wait_drq(self) -> int:
        status = self.inb(STATUS)                 # also acknowledges the interrupt
        assert not status & BSY
        return status


@pytest.fixture
def disk_file(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * 2 * SECTORS)
    return path


@pytest.fixture
def rig(disk_file) -> Rig:
    return Rig(SpyImage(str(disk_file)))


def ata_text(page: bytes, start_word: int, words: int) -> str:
    raw = page[2 * start_word:2 * (start_word + words)]
    return bytes(raw[i ^ 1] for i in range(len(raw))).decode().strip()


def test_identify_device(rig):
    rig.out(DEVICE, 0xA0)
    rig.out(STATUS, 0xEC)
    assert rig.irq
    assert rig.alt_status() == DRDY | DSC | DRQ
    assert rig.irq                                 # alternate status does not acknowledge
    assert rig.wait_drq() & DRQ
    assert not rig.irq                             # status does
    page = rig.read_block()
    assert rig.inb(STATUS) == DRDY | DSC          # DRQ gone after 256 words
    words = struct.unpack("<256H", page)
    assert words[0] == 0x0040                      # fixed disk
    assert ata_text(page, 27, 20) == "SANDBOX HARDDISK"
    assert ata_text(page, 10, 10) == "SB0001"
    assert ata_text(page, 23, 4) == "0.1.0"
    assert words[60] | words[61] << 16 == SECTORS  # LBA28 capacity
    assert words[49] & (1 << 9)                    # LBA supported
    assert (words[1], words[3], words[6]) == (SECTORS // (16 * 63), 16, 63)
    assert words[83] & (1 << 12)                   # FLUSH CACHE supported
    assert words[255] & 0xFF == 0xA5 and sum(page) % 256 == 0   # checksum


def test_write_then_read_back_lands_in_the_image_file(rig, disk_file):
    payload = bytes((i * 7) & 0xFF for i in range(1024))
    rig.lba28(0x30, 5, 2)                          # WRITE SECTORS, LBA 5, two sectors
    assert rig.alt_status() & DRQ and not rig.irq  # no interrupt before the first block
    rig.write_block(payload[:512])
    assert rig.irq                                 # one interrupt per sector
    assert disk_file.read_bytes()[5 * 512:6 * 512] == payload[:512]   # acknowledged = on disk
    assert rig.wait_drq() & DRQ
    rig.write_block(payload[512:])
    assert rig.irq
    assert rig.wait_drq() == DRDY | DSC
    assert disk_file.read_bytes()[5 * 512:7 * 512] == payload
    assert [e for e in rig.events if e[0] == "disk.write"] == [
        ("disk.write", {"lba": 5, "count": 1}), ("disk.write", {"lba": 6, "count": 1})]

    rig.lba28(0x20, 5, 2)                          # READ SECTORS
    got = b""
    for _ in range(2):
        assert rig.irq
        assert rig.wait_drq() & DRQ
        got += rig.read_block()
    assert got == payload
    assert rig.inb(STATUS) == DRDY | DSC
    assert ("disk.read", {"lba": 5, "count": 2}) in rig.events


def test_32_bit_data_port_transfers(rig, disk_file):
    rig.lba28(0x30, 100, 1)
    rig.write_block(b"\xAB\xCD\xEF\x01" * 128, size=4)
    assert disk_file.read_bytes()[100 * 512:101 * 512] == b"\xAB\xCD\xEF\x01" * 128
    rig.lba28(0x20, 100, 1)
    assert rig.read_block(size=4) == b"\xAB\xCD\xEF\x01" * 128


def test_sector_count_zero_means_256(rig, disk_file):
    rig.lba28(0x20, 0, 0)
    blocks = 0
    while rig.wait_drq() & DRQ:
        assert rig.read_block() == disk_file.read_bytes()[blocks * 512:(blocks + 1) * 512]
        blocks += 1
    assert blocks == 256


def test_chs_addressing_uses_16_heads_63_sectors(rig, disk_file):
    cylinder, head, sector = 1, 2, 3
    lba = (cylinder * 16 + head) * 63 + sector - 1
    rig.out(DEVICE, 0xA0 | head)                   # CHS, device 0
    rig.out(COUNT, 1)
    rig.out(LBA0, sector)
    rig.out(LBA1, cylinder)
    rig.out(LBA2, 0)
    rig.out(STATUS, 0x20)
    rig.wait_drq()
    assert rig.read_block() == disk_file.read_bytes()[lba * 512:(lba + 1) * 512]


def test_initialize_device_parameters_changes_the_chs_translation(rig, disk_file):
    rig.out(DEVICE, 0xA0 | (4 - 1))                # 4 heads
    rig.out(COUNT, 17)                             # 17 sectors per track
    rig.out(STATUS, 0x91)
    assert rig.wait_drq() == DRDY | DSC
    rig.out(DEVICE, 0xA0 | 1)
    rig.out(COUNT, 1)
    rig.out(LBA0, 1)
    rig.out(LBA1, 2)
    rig.out(LBA2, 0)
    rig.out(STATUS, 0x20)
    rig.wait_drq()
    lba = (2 * 4 + 1) * 17
    assert rig.read_block() == disk_file.read_bytes()[lba * 512:(lba + 1) * 512]


def test_chs_sector_zero_does_not_exist(rig):
    rig.out(DEVICE, 0xA0)
    rig.out(COUNT, 1)
    rig.out(LBA0, 0)
    rig.out(STATUS, 0x20)
    assert rig.inb(STATUS) & ERR and rig.inb(ERROR) == IDNF


def test_flush_cache_flushes_the_image(rig):
    rig.lba28(0xE7, 0, 0)
    assert rig.irq
    assert rig.wait_drq() == DRDY | DSC
    assert rig.image.flushes == 1
    assert ("disk.flush", {}) in rig.events


def test_unknown_command_aborts(rig):
    rig.out(DEVICE, 0xA0)
    rig.out(STATUS, 0xFF)
    assert rig.irq
    assert rig.inb(STATUS) == DRDY | ERR
    assert rig.inb(ERROR) == ABRT


def test_address_past_the_end_is_id_not_found(rig):
    rig.lba28(0x20, SECTORS - 1, 2)
    assert rig.inb(STATUS) & ERR and rig.inb(ERROR) == IDNF


def test_set_features_verify_and_diagnostic_are_accepted(rig):
    rig.out(ERROR, 0x03)                           # Features (same port): set transfer mode
    rig.out(COUNT, 0x0C)                           # PIO mode 4
    rig.out(DEVICE, 0xA0)
    rig.out(STATUS, 0xEF)
    assert rig.wait_drq() == DRDY | DSC
    rig.lba28(0x40, 10, 4)                         # READ VERIFY
    assert rig.irq and rig.wait_drq() == DRDY | DSC
    rig.out(STATUS, 0x90)                          # EXECUTE DEVICE DIAGNOSTIC
    assert rig.wait_drq() == DRDY | DSC
    assert rig.inb(ERROR) == 0x01                  # passed
    assert (rig.inb(COUNT), rig.inb(LBA0), rig.inb(LBA1), rig.inb(LBA2)) == (1, 1, 0, 0)


def test_selecting_the_absent_device_1_reads_status_0_and_ignores_commands(rig):
    rig.out(DEVICE, 0xB0)
    assert rig.inb(STATUS) == 0 and rig.alt_status() == 0 and rig.inb(ERROR) == 0
    rig.out(STATUS, 0xEC)
    assert not rig.irq and rig.inb(STATUS) == 0
    rig.out(DEVICE, 0xA0)
    assert rig.inb(STATUS) == DRDY | DSC           # device 0 untouched


def test_probing_device_1_as_linux_does_finds_no_device(rig):
    rig.out(DEVICE, 0xB0)
    rig.out(COUNT, 0x55)                           # ata_devchk: registers latch writes ...
    rig.out(LBA0, 0xAA)
    assert (rig.inb(COUNT), rig.inb(LBA0)) == (0x55, 0xAA)
    rig.control(0x04)                              # ... then a bus reset
    rig.control(0x00)
    rig.out(DEVICE, 0xB0)
    assert (rig.inb(LBA1), rig.inb(LBA2)) == (0xFF, 0xFF)   # signature: nothing there
    rig.out(DEVICE, 0xA0)
    assert (rig.inb(LBA1), rig.inb(LBA2)) == (0x00, 0x00)   # device 0: an ATA disk


def test_commands_update_only_device_0_registers(rig):
    rig.lba28(0x20, 7, 1)
    rig.wait_drq()
    rig.read_block()
    assert rig.inb(LBA0) == 8                      # next sector, as QEMU leaves it
    rig.out(DEVICE, 0xF0)                          # device 1 still shows what was written
    assert rig.inb(LBA0) == 7


def test_nien_masks_the_interrupt_line(rig):
    rig.control(0x02)                              # nIEN: a polling driver
    rig.lba28(0x20, 0, 1)
    assert not rig.irq
    assert rig.wait_drq() & DRQ                    # polling Status works (and acknowledges)
    rig.read_block()
    rig.control(0x00)
    assert rig.irq_edges == 0


def test_an_unacknowledged_interrupt_shows_when_nien_is_cleared(rig):
    rig.control(0x02)
    rig.lba28(0xE7, 0, 0)                          # FLUSH CACHE completes at once
    assert not rig.irq
    rig.control(0x00)
    assert rig.irq                                 # INTRQ was pending all along


def test_software_reset(rig):
    rig.lba28(0x20, 0, 4)
    rig.control(0x04)                              # SRST
    assert rig.alt_status() & BSY
    rig.control(0x00)
    assert rig.alt_status() == DRDY | DSC          # the transfer was abandoned
    assert (rig.inb(COUNT), rig.inb(LBA0), rig.inb(LBA1), rig.inb(LBA2)) == (1, 1, 0, 0)
    assert rig.inb(ERROR) == 0x01
    assert not rig.irq


def test_read_only_image_aborts_writes(disk_file):
    before = disk_file.read_bytes()
    rig = Rig(RawImage(str(disk_file), readonly=True))
    rig.lba28(0x30, 0, 1)
    assert rig.irq
    assert rig.inb(STATUS) == DRDY | ERR and rig.inb(ERROR) == ABRT
    rig.write_block(bytes(512))                    # no DRQ: ignored
    assert disk_file.read_bytes() == before


def test_read_multiple_works_at_power_on_with_16_sector_blocks(rig, disk_file):
    rig.lba28(0xC4, 0, 20)                         # QEMU also starts with multiple = 16
    assert rig.wait_drq() & DRQ
    assert rig.read_block(words=256 * 16) == disk_file.read_bytes()[:16 * 512]
    assert rig.wait_drq() & DRQ
    assert rig.read_block(words=256 * 4) == disk_file.read_bytes()[16 * 512:20 * 512]
    assert rig.wait_drq() == DRDY | DSC


def test_read_multiple_interrupts_once_per_block(rig, disk_file):
    rig.out(DEVICE, 0xE0)
    rig.out(COUNT, 4)
    rig.out(STATUS, 0xC6)                          # SET MULTIPLE MODE: 4 sectors
    assert rig.wait_drq() == DRDY | DSC
    rig.lba28(0xC4, 8, 8)                          # READ MULTIPLE, 8 sectors
    got = b""
    while rig.wait_drq() & DRQ:
        got += rig.read_block(words=256 * 4)
    assert got == disk_file.read_bytes()[8 * 512:16 * 512]
    assert rig.irq_edges == 2 + 1                  # two blocks (+ SET MULTIPLE)


def test_lba48_read(rig, disk_file):
    rig.out(DEVICE, 0x40)
    for reg, (high, low) in ((COUNT, (0, 1)), (LBA0, (0, 0x10)), (LBA1, (0, 0x02)), (LBA2, (0, 0))):
        rig.out(reg, high)                         # high-order byte first
        rig.out(reg, low)
    rig.out(STATUS, 0x24)                          # READ SECTORS EXT
    rig.wait_drq()
    assert rig.read_block() == disk_file.read_bytes()[0x210 * 512:0x211 * 512]


def test_no_disk_reads_zero_everywhere():
    rig = Rig(None)
    assert [rig.inb(r) for r in range(1, 8)] == [0] * 7
    rig.out(STATUS, 0xEC)
    assert not rig.irq and rig.alt_status() == 0


def test_state_for_inspectors(rig):
    rig.lba28(0x20, 3, 1)
    state = rig.disk.state()
    assert state["transfer"] == {"direction": "in", "byte": 0, "of": 512}
    assert state["sectors"] == SECTORS
