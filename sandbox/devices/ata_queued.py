"""The ATA disk with a physical disk behind it: reads, writes and flushes take time.

``AtaDisk`` answers every command at once. Here READ, WRITE and FLUSH go through the
physical disk's I/O queue (``sandbox.storage.io_queue``), the way a real drive behaves:

* READ: BSY from the command until the queue says the sectors are read; then the data
  is ready (DRQ) and the interrupt fires.
* WRITE: DRQ at once for the data; after the command's last block BSY until the
  queue says it is on the disk; then the sectors go to the image and the interrupt fires.
* FLUSH CACHE: BSY until the queue serves the flush; then fsync and the interrupt.

With an ideal disk the queue answers inside the command itself, so nothing changes
for the guest. Every register access is an exit and is counted for the report.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sandbox.devices.ata import AtaControl, AtaDisk
from sandbox.devices.ata_commands import COMMANDS, LBA48_COMMANDS, MULTIPLE_COMMANDS
from sandbox.devices.ata_registers import BSY, DRDY, DRQ, DSC, SRST
from sandbox.devices.base import DeviceContext
from sandbox.storage.base import SECTOR

if TYPE_CHECKING:
    from sandbox.storage.base import BlockImage
    from sandbox.storage.disk_port import DiskPort

# Command code -> what it asks of the physical disk.
QUEUED = {**{code: "read" for code in (0x20, 0x21, 0x24, 0xC4, 0x29)},
          **{code: "write" for code in (0x30, 0x31, 0x34, 0xC5, 0x39)},
          0xE7: "flush", 0xEA: "flush"}


class _Counter:
    exits = 0


class CountedControl(AtaControl):
    def read(self, offset: int, size: int) -> int:
        self.disk.counter.exits += 1
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.disk.counter.exits += 1
        super().write(offset, size, value)


class QueuedAtaDisk(AtaDisk):
    def __init__(self, name: str, ctx: DeviceContext | None, image: "BlockImage | None",
                 port: "DiskPort | None" = None, irq: int = 14) -> None:
        super().__init__(name, ctx, image, irq)
        self.port = port
        self.counter = port.stats if port is not None else _Counter()
        self.control = CountedControl(f"{name}.control", self.ctx, self)
        self.generation = 0            # bumped by resets: late completions are dropped
        self._write_span: tuple[int, int] | None = None

    # --- exits ---------------------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        self.counter.exits += 1
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.counter.exits += 1
        super().write(offset, size, value)

    # --- time ----------------------------------------------------------------------------------
    def next_deadline(self) -> int | None:
        return self.port.next_deadline() if self.port is not None else None

    def advance(self, now_ns: int) -> None:
        if self.port is not None:
            self.port.advance(now_ns)

    def reset(self) -> None:
        self.generation += 1
        self._write_span = None
        super().reset()

    def write_control(self, value: int) -> None:
        if value & SRST and not self.devctl & SRST:
            self.generation += 1
            self._write_span = None
        super().write_control(value)

    # --- commands through the queue ---------------------------------------------------------------
    def _execute(self, code: int) -> None:
        op = QUEUED.get(code)
        if op is None or self.port is None or not self.selected or self.status & (BSY | DRQ):
            super()._execute(code)
            return
        if op == "write":
            super()._execute(code)             # DRQ for the data; the queue comes after it
            if self.xfer is not None:
                self._write_span = (self.xfer.lba, self.xfer.remaining)
            return
        lba, count = self.tf.address(code in LBA48_COMMANDS, self.geometry)
        if op == "read" and (lba is None or lba + count > self.total
                             or (code in MULTIPLE_COMMANDS and not self.multiple)):
            super()._execute(code)             # fails at once (IDNF or ABRT)
            return
        self.error = 0
        self.status = BSY
        generation = self.generation

        def done(_req: Any) -> None:
            if generation == self.generation:
                self.status = DRDY | DSC
                COMMANDS[code][1](self, code)  # moves the data (or fsyncs) and interrupts
        if op == "read":
            self.port.submit("read", lba, count * SECTOR, done, self.ctx.clock())
        else:
            self.port.submit("flush", 0, 0, done, self.ctx.clock())

    def _block_done(self) -> None:
        x = self.xfer
        if self._dir != "out" or x is None or x.remaining > x.block or self._write_span is None:
            super()._block_done()
            return
        # The command's last block is in the drive's buffer: busy until it is on the disk.
        finish, self._on_done = self._on_done, None
        lba, count = self._write_span
        self._write_span = None
        self.status = BSY
        generation = self.generation

        def done(_req: Any) -> None:
            if generation == self.generation:
                self.status = DRDY | DSC
                finish()                       # writes the block to the image and interrupts
        self.port.submit("write", lba, count * SECTOR, done, self.ctx.clock())

    def state(self) -> dict[str, Any]:
        return {**super().state(), "physical_disk": self.port.queue.name if self.port else None}
