"""The MC146818 real-time clock and its CMOS RAM (index 0x70, data 0x71).

The clock shows a fixed epoch (by default 2026-01-01 00:00:00) plus guest time, so
a guest sees the same dates on every run. Writing the time registers (normally with
SET in status B held) moves the clock; the difference is kept as an offset. The
RAM around the clock holds what firmware and OSes look up: the equipment byte,
memory sizes, the century. Periodic, alarm and update-ended interrupts (IRQ 8) are
computed from guest time as well, so they are exact and deterministic.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from sandbox.devices.base import Device, DeviceContext

DEFAULT_EPOCH = datetime(2026, 1, 1, 0, 0, 0)
NS_PER_S = 1_000_000_000
RTC_HZ = 32768
UIP_NS = 244_000                 # "update in progress" shows for the last 244 us of each second

SECONDS, SECONDS_ALARM, MINUTES, MINUTES_ALARM, HOURS, HOURS_ALARM = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
WEEKDAY, DAY, MONTH, YEAR = 0x06, 0x07, 0x08, 0x09
STATUS_A, STATUS_B, STATUS_C, STATUS_D = 0x0A, 0x0B, 0x0C, 0x0D
CENTURY = 0x32

A_UIP = 0x80
B_SET, B_PIE, B_AIE, B_UIE, B_BINARY, B_24H = 0x80, 0x40, 0x20, 0x10, 0x04, 0x02
C_IRQF, C_PF, C_AF, C_UF = 0x80, 0x40, 0x20, 0x10

# Clock registers: index -> (field name, what it holds).
TIME_REGISTERS = {
    SECONDS: ("second", "seconds 0-59"),
    MINUTES: ("minute", "minutes 0-59"),
    HOURS: ("hour", "hours 0-23, or 1-12 with bit 7 for PM"),
    WEEKDAY: ("weekday", "day of the week, 1 = Sunday"),
    DAY: ("day", "day of the month 1-31"),
    MONTH: ("month", "month 1-12"),
    YEAR: ("year", "year within the century 0-99"),
    CENTURY: ("century", "century, 20 for 2026"),
}

# CMOS RAM contents this machine sets up.
RAM_LAYOUT = {
    0x10: "floppy drive types (0: none)",
    0x14: "equipment: FPU present, VGA, no floppy",
    0x15: "base memory in KiB, low byte (640)",
    0x16: "base memory in KiB, high byte",
    0x17: "memory above 1 MiB in KiB (up to 63 MiB), low byte",
    0x18: "memory above 1 MiB in KiB, high byte",
    0x2E: "checksum of 0x10-0x2D, high byte",
    0x2F: "checksum of 0x10-0x2D, low byte",
    0x30: "memory above 1 MiB in KiB, low byte (copy)",
    0x31: "memory above 1 MiB in KiB, high byte (copy)",
    0x34: "memory above 16 MiB in 64 KiB blocks, low byte",
    0x35: "memory above 16 MiB in 64 KiB blocks, high byte",
}


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def _unbcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0x0F)


def _fields(t: datetime) -> dict[str, int]:
    return {"second": t.second, "minute": t.minute, "hour": t.hour,
            "weekday": t.isoweekday() % 7 + 1, "day": t.day, "month": t.month,
            "year": t.year % 100, "century": t.year // 100}


def _datetime(f: dict[str, int]) -> datetime:
    """The date the fields describe, out-of-range values clamped."""
    year = min(max(f["century"] * 100 + f["year"], 1), 9999)
    month = min(max(f["month"], 1), 12)
    day = min(max(f["day"], 1), calendar.monthrange(year, month)[1])
    return datetime(year, month, day, min(f["hour"], 23), min(f["minute"], 59), min(f["second"], 59))


class CmosRtc(Device):
    description = "The real-time clock and CMOS RAM: the date and time, and what the firmware records about the machine."

    def __init__(self, name: str, ctx: DeviceContext | None = None, memory_mib: int = 16,
                 epoch: datetime = DEFAULT_EPOCH, irq: int = 8) -> None:
        super().__init__(name, ctx)
        self.irq = self.ctx.irq(irq)
        self.epoch = epoch
        self.memory_mib = memory_mib
        self.ram = bytearray(128)
        self.offset_s = 0                     # seconds the guest moved the clock by
        self.frozen: dict[str, int] | None = None   # the time held while SET is on
        self._setup_ram()
        self.index = 0
        self.nmi_disabled = False
        self._seen_ns = self.ctx.clock()      # interrupt flags are up to date until here

    def _setup_ram(self) -> None:
        ram = self.ram
        ram[STATUS_A] = 0x26                  # 32.768 kHz time base, 1024 Hz periodic rate
        ram[STATUS_B] = B_24H                 # BCD, 24-hour
        ram[0x10] = 0x00
        ram[0x14] = 0x02
        ram[0x15], ram[0x16] = 640 & 0xFF, 640 >> 8
        extended = min(max(self.memory_mib * 1024 - 1024, 0), 0xFFFF)
        ram[0x17] = ram[0x30] = extended & 0xFF
        ram[0x18] = ram[0x31] = extended >> 8
        above16 = min(max(self.memory_mib - 16, 0) * 16, 0xFFFF)
        ram[0x34], ram[0x35] = above16 & 0xFF, above16 >> 8
        checksum = sum(ram[0x10:0x2E])
        ram[0x2E], ram[0x2F] = checksum >> 8, checksum & 0xFF

    def reset(self) -> None:
        """The clock is battery-backed: a machine reset only clears interrupts."""
        self._collect_flags()
        self.ram[STATUS_B] &= ~(B_PIE | B_AIE | B_UIE)
        self.ram[STATUS_C] = 0
        self.index = 0
        self._update_irq()

    # --- time -----------------------------------------------------------------------------
    def now(self) -> datetime:
        if self.frozen is not None:
            return _datetime(self.frozen)
        return self._at(self.ctx.clock())

    def _at(self, ns: int) -> datetime:
        return self.epoch + timedelta(seconds=ns // NS_PER_S + self.offset_s)

    def _set_time(self, fields: dict[str, int]) -> None:
        wanted = _datetime(fields)
        running = self.epoch + timedelta(seconds=self.ctx.clock() // NS_PER_S)
        self.offset_s = int((wanted - running).total_seconds())

    def _encode(self, index: int, value: int) -> int:
        b = self.ram[STATUS_B]
        pm = 0
        if index == HOURS and not b & B_24H:
            pm, value = (0x80 if value >= 12 else 0), value % 12 or 12
        return (value if b & B_BINARY else _bcd(value)) | pm

    def _decode(self, index: int, value: int) -> int:
        b = self.ram[STATUS_B]
        pm = False
        if index == HOURS and not b & B_24H:
            pm, value = bool(value & 0x80), value & 0x7F
        value = value if b & B_BINARY else _unbcd(value)
        if index == HOURS and not b & B_24H:
            value = value % 12 + (12 if pm else 0)
        return value

    # --- port I/O ----------------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return 0xFF                        # the index register is write-only
        index = self.index
        if index in TIME_REGISTERS:
            return self._encode(index, _fields(self.now())[TIME_REGISTERS[index][0]])
        if index == STATUS_A:
            return self.ram[STATUS_A] | (A_UIP if self._updating() else 0)
        if index == STATUS_C:
            self._collect_flags()
            value = self.ram[STATUS_C]
            self.ram[STATUS_C] = 0             # reading C clears the flags and the IRQ
            self._update_irq()
            return value
        if index == STATUS_D:
            return 0x80                        # valid RAM and time: the battery is fine
        return self.ram[index]

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == 0:
            self.index = value & 0x7F
            self.nmi_disabled = bool(value & 0x80)
            return
        index = self.index
        self._collect_flags()
        if index in TIME_REGISTERS:
            fields = self.frozen if self.frozen is not None else _fields(self.now())
            fields[TIME_REGISTERS[index][0]] = self._decode(index, value)
            if self.frozen is None:
                self._set_time(fields)
        elif index == STATUS_A:
            self.ram[STATUS_A] = value & 0x7F
        elif index == STATUS_B:
            self._write_b(value)
        elif index not in (STATUS_C, STATUS_D):
            self.ram[index] = value
        self._update_irq()

    def _write_b(self, value: int) -> None:
        old = self.ram[STATUS_B]
        if value & B_SET:
            value &= ~B_UIE                    # no update cycles while SET is on
            if not old & B_SET:
                self.frozen = _fields(self.now())
        elif old & B_SET and self.frozen is not None:
            self._set_time(self.frozen)
            self.frozen = None
        self.ram[STATUS_B] = value

    def _updating(self) -> bool:
        return self.frozen is None and self.ctx.clock() % NS_PER_S >= NS_PER_S - UIP_NS

    # --- interrupt flags -----------------------------------------------------------------------
    def _period_ticks(self) -> int | None:
        """The periodic interrupt period in RTC ticks, or None (rate 0)."""
        rate = self.ram[STATUS_A] & 0x0F
        if rate == 0:
            return None
        return 1 << (rate - 1) if rate >= 3 else 1 << (rate + 6)

    def _next_periodic_ns(self, after_ns: int) -> int | None:
        period = self._period_ticks()
        if period is None:
            return None
        tick = after_ns * RTC_HZ // NS_PER_S // period * period + period
        return -(-tick * NS_PER_S // RTC_HZ)

    def _alarm_matches(self, t: datetime) -> bool:
        for alarm, field in ((SECONDS_ALARM, t.second), (MINUTES_ALARM, t.minute), (HOURS_ALARM, t.hour)):
            raw = self.ram[alarm]
            if raw & 0xC0 != 0xC0 and self._decode(HOURS if alarm == HOURS_ALARM else alarm, raw) != field:
                return False
        return True

    def _collect_flags(self, now: int | None = None) -> None:
        """Set PF, UF and AF for every periodic tick and second boundary since last time."""
        now = self.ctx.clock() if now is None else now
        seen = self._seen_ns
        if now <= seen:
            return
        flags = 0
        nxt = self._next_periodic_ns(seen)
        if nxt is not None and nxt <= now:
            flags |= C_PF
        if self.frozen is None and now // NS_PER_S > seen // NS_PER_S:
            flags |= C_UF
            first = seen // NS_PER_S + 1
            for second in range(max(first, now // NS_PER_S - 86400), now // NS_PER_S + 1):
                if self._alarm_matches(self._at(second * NS_PER_S)):
                    flags |= C_AF
                    break
        self.ram[STATUS_C] |= flags
        self._seen_ns = now

    def _update_irq(self) -> None:
        c = self.ram[STATUS_C]
        if c & self.ram[STATUS_B] & (C_PF | C_AF | C_UF):
            self.ram[STATUS_C] = c | C_IRQF
            if not self.irq.level:
                self.irq.raise_()
        elif self.irq.level:
            self.irq.lower()

    def next_deadline(self) -> int | None:
        b = self.ram[STATUS_B]
        if self.irq.level or not b & (B_PIE | B_AIE | B_UIE):
            return None                        # nothing enabled, or waiting for C to be read
        candidates = []
        if b & B_PIE:
            candidates.append(self._next_periodic_ns(self._seen_ns))
        if b & (B_AIE | B_UIE) and self.frozen is None:
            candidates.append((self._seen_ns // NS_PER_S + 1) * NS_PER_S)
        due = [c for c in candidates if c is not None]
        return min(due) if due else None

    def advance(self, now_ns: int) -> None:
        self._collect_flags(now_ns)
        self._update_irq()

    def state(self) -> dict[str, Any]:
        return {"time": self.now().isoformat(sep=" "), "index": self.index,
                "nmi_disabled": self.nmi_disabled, "status_a": self.ram[STATUS_A],
                "status_b": self.ram[STATUS_B], "status_c": self.ram[STATUS_C],
                "binary": bool(self.ram[STATUS_B] & B_BINARY),
                "hour_24": bool(self.ram[STATUS_B] & B_24H), "offset_s": self.offset_s}

