"""The 8254 programmable interval timer (ports 0x40-0x43): the PC's heartbeat.

Three 16-bit down-counters run from a 1.193182 MHz clock. Channel 0 drives IRQ 0
(the OS tick), channel 1 once refreshed DRAM, channel 2 feeds the speaker and its
gate and output are reached through port 0x61 (see ``portb.py``).

Nothing here ticks. Guest time (ns) maps to PIT clock ticks with integer arithmetic,
``tick = ns * 1193182 // 10**9``, and a counter's value and output are computed
from the ticks elapsed since it was loaded. The next IRQ 0 edge is turned back into
the first nanosecond at which that tick has happened, so interrupts are exact in
guest time and never drift however long the guest runs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from sandbox.devices.base import Device, DeviceContext

PIT_HZ = 1_193_182
NS_PER_S = 1_000_000_000


def tick_at(ns: int) -> int:
    """How many PIT clock ticks have happened by guest time ``ns``."""
    return ns * PIT_HZ // NS_PER_S


def ns_of_tick(tick: int) -> int:
    """The first guest nanosecond at which ``tick`` has happened (inverse of tick_at)."""
    return -(-tick * NS_PER_S // PIT_HZ)


# --- the six counting modes: value and OUT as functions of elapsed ticks e ---------------
def _countdown(e: int, n: int, modulus: int) -> int:
    return (n - e) % modulus


def _rate_value(e: int, n: int, modulus: int) -> int:
    return n - e % n


def _square_value(e: int, n: int, modulus: int) -> int:
    phase, half = e % n, (n + 1) // 2
    return n - 2 * (phase if phase < half else phase - half)


def _periodic_edge(after: int, n: int) -> int | None:
    return (after // n + 1) * n


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    value: Callable[[int, int, int], int]
    out: Callable[[int, int], bool]
    next_rising_edge: Callable[[int, int], int | None]   # first edge at elapsed > after
    idle_out: bool             # OUT while waiting for a count or a gate trigger
    gate_triggered: bool       # counting (re)starts on a rising GATE edge
    gate_pauses: bool          # GATE low suspends counting (else it stops and reloads)


MODES: dict[int, Mode] = {
    0: Mode("interrupt on terminal count", "OUT goes low when the count is written and rises when it reaches zero: a one-shot delay.",
            _countdown, lambda e, n: e >= n, lambda a, n: n if a < n else None, False, False, True),
    1: Mode("hardware one-shot", "A rising GATE starts the count; OUT is low until it reaches zero.",
            _countdown, lambda e, n: e >= n, lambda a, n: n if a < n else None, True, True, False),
    2: Mode("rate generator", "OUT pulses low for one tick every N ticks: a periodic interrupt.",
            _rate_value, lambda e, n: e % n != n - 1, _periodic_edge, True, False, False),
    3: Mode("square wave", "OUT is high for half of every N ticks and low for the other half: the speaker tone and the classic 18.2 Hz tick.",
            _square_value, lambda e, n: e % n < (n + 1) // 2, _periodic_edge, True, False, False),
    4: Mode("software strobe", "OUT pulses low for one tick when the count reaches zero, once.",
            _countdown, lambda e, n: e != n, lambda a, n: n + 1 if a < n + 1 else None, True, False, True),
    5: Mode("hardware strobe", "A rising GATE starts the count; OUT pulses low for one tick at zero.",
            _countdown, lambda e, n: e != n, lambda a, n: n + 1 if a < n + 1 else None, True, True, False),
}

ACCESS_LATCH, ACCESS_LO, ACCESS_HI, ACCESS_LOHI = 0, 1, 2, 3


def _from_bcd(value: int) -> int:
    return sum(((value >> (4 * i)) & 0xF) * 10 ** i for i in range(4))


def _to_bcd(value: int) -> int:
    return sum((value // 10 ** i % 10) << (4 * i) for i in range(4))


class Channel:
    """One counter: its programming, its count and where it is in time."""

    def __init__(self, index: int, gate: bool) -> None:
        self.index = index
        self.gate = gate
        self.mode = 3
        self.access = ACCESS_LOHI
        self.bcd = False
        self.count = 0x10000          # N, the reload value (a written 0 means the maximum)
        self.start: int | None = None   # tick at which counting from N began
        self.paused: int | None = None  # elapsed ticks frozen by GATE low (modes 0 and 4)
        self.held = 0                   # the value shown while not counting
        self.loaded = False
        self.write_hi_next = False
        self.low_byte = 0
        self.read_hi_next = False
        self.latched: list[int] = []
        self.status: int | None = None
        self.null_count = True

    @property
    def modulus(self) -> int:
        return 10000 if self.bcd else 0x10000

    @property
    def behaviour(self) -> Mode:
        return MODES[self.mode]

    def elapsed(self, tick: int) -> int | None:
        return tick - self.start if self.start is not None else self.paused

    def value(self, tick: int) -> int:
        e = self.elapsed(tick)
        if e is None:
            return self.held
        return self.behaviour.value(e, self.count, self.modulus) % self.modulus

    def out(self, tick: int) -> bool:
        e = self.elapsed(tick)
        return self.behaviour.idle_out if e is None else self.behaviour.out(e, self.count)

    def next_rising_tick(self, after_tick: int) -> int | None:
        """The absolute tick of OUT's next rising edge after ``after_tick``."""
        if self.start is None:
            return None
        edge = self.behaviour.next_rising_edge(max(after_tick - self.start, 0), self.count)
        return None if edge is None else self.start + edge

    # --- programming -----------------------------------------------------------------
    def program(self, mode: int, access: int, bcd: bool, tick: int) -> None:
        self.held = self.value(tick)
        self.mode = mode if mode < 6 else mode - 4     # modes 6 and 7 are 2 and 3
        self.access = access
        self.bcd = bcd
        self.start = self.paused = None
        self.loaded = False
        self.write_hi_next = self.read_hi_next = False
        self.latched = []
        self.status = None
        self.null_count = True

    def write_count(self, byte: int, tick: int) -> None:
        if self.access == ACCESS_LO:
            self._load(byte, tick)
        elif self.access == ACCESS_HI:
            self._load(byte << 8, tick)
        elif not self.write_hi_next:
            self.low_byte = byte
            self.write_hi_next = True
            if self.mode == 0:                 # mode 0: the first byte stops the count
                self.held = self.value(tick)
                self.start = self.paused = None
        else:
            self.write_hi_next = False
            self._load(self.low_byte | (byte << 8), tick)

    def _load(self, raw: int, tick: int) -> None:
        n = _from_bcd(raw) if self.bcd else raw
        self.count = n or self.modulus
        self.held = self.count
        self.loaded = True
        self.null_count = False
        self.start = self.paused = None
        mode = self.behaviour
        if mode.gate_triggered:
            return                             # waits for a rising GATE
        if self.gate:
            self.start = tick
        elif mode.gate_pauses:
            self.paused = 0

    def set_gate(self, level: bool, tick: int) -> None:
        if level == self.gate:
            return
        self.gate = level
        mode = self.behaviour
        if not self.loaded:
            return
        if mode.gate_triggered:
            if level:
                self.start, self.paused = tick, None
        elif mode.gate_pauses:
            if level and self.paused is not None:
                self.start, self.paused = tick - self.paused, None
            elif not level and self.start is not None:
                self.paused, self.start = tick - self.start, None
        elif level:
            self.start = tick                  # modes 2 and 3 restart from N
        else:
            self.held = self.value(tick)
            self.start = None                  # stopped, OUT forced high

    # --- reading ---------------------------------------------------------------------
    def latch_count(self, tick: int) -> None:
        if self.latched:
            return                             # a latch not yet read is kept
        value = self._encoded(tick)
        lo, hi = value & 0xFF, value >> 8
        self.latched = {ACCESS_LO: [lo], ACCESS_HI: [hi]}.get(self.access, [lo, hi])

    def latch_status(self, tick: int) -> None:
        if self.status is None:
            self.status = ((0x80 if self.out(tick) else 0) | (0x40 if self.null_count else 0)
                           | (self.access << 4) | (self.mode << 1) | int(self.bcd))

    def read(self, tick: int) -> int:
        if self.status is not None:
            value, self.status = self.status, None
            return value
        if self.latched:
            return self.latched.pop(0)
        value = self._encoded(tick)
        if self.access == ACCESS_LO:
            return value & 0xFF
        if self.access == ACCESS_HI:
            return value >> 8
        self.read_hi_next = not self.read_hi_next
        return value & 0xFF if self.read_hi_next else value >> 8

    def _encoded(self, tick: int) -> int:
        value = self.value(tick)
        return _to_bcd(value) if self.bcd else value

    def state(self, tick: int) -> dict[str, Any]:
        return {"mode": self.mode, "mode_name": self.behaviour.name, "count": self.count,
                "value": self.value(tick), "out": self.out(tick), "gate": self.gate,
                "bcd": self.bcd, "access": self.access, "counting": self.start is not None,
                "frequency_hz": PIT_HZ / self.count if self.mode in (2, 3) else None}


class Pit8254(Device):
    description = "An 8254 interval timer: three counters on a 1.193182 MHz clock; channel 0 is the operating system's tick on IRQ 0."

    def __init__(self, name: str, ctx: DeviceContext | None = None, irq: int = 0) -> None:
        super().__init__(name, ctx)
        self.irq = self.ctx.irq(irq)
        self._power_on()

    def _power_on(self) -> None:
        tick = self._now()
        self.channels = [Channel(0, True), Channel(1, True), Channel(2, False)]
        # As in QEMU: every channel starts in mode 3 with the maximum count, 0 and 1 running.
        for ch in self.channels:
            ch.program(3, ACCESS_LOHI, False, tick)
            ch._load(0, tick)
        self._fired_upto = tick        # IRQ 0 edges up to this tick have been delivered

    def reset(self) -> None:
        self._power_on()

    def _now(self) -> int:
        return tick_at(self.ctx.clock())

    # --- port I/O ---------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset < 3:
            return self.channels[offset].read(self._now())
        return 0xFF                                # the control word is write-only

    def write(self, offset: int, size: int, value: int) -> None:
        tick = self._now()
        value &= 0xFF
        if offset < 3:
            self.channels[offset].write_count(value, tick)
            if offset == 0:
                self._fired_upto = tick
            return
        select, access = value >> 6, (value >> 4) & 3
        if select == 3:
            self._read_back(value, tick)
        elif access == ACCESS_LATCH:
            self.channels[select].latch_count(tick)
        else:
            self.channels[select].program((value >> 1) & 7, access, bool(value & 1), tick)
            if select == 0:
                self._fired_upto = tick

    def _read_back(self, value: int, tick: int) -> None:
        """Read-back command: latch count (bit 5 clear) and/or status (bit 4 clear)
        of every channel selected in bits 3-1."""
        for ch in self.channels:
            if value & (2 << ch.index):
                if not value & 0x10:
                    ch.latch_status(tick)
                if not value & 0x20:
                    ch.latch_count(tick)

    # --- port 0x61 and the hypervisor -----------------------------------------------------
    def set_gate(self, channel: int, level: bool) -> None:
        self.channels[channel].set_gate(level, self._now())

    def output(self, channel: int) -> bool:
        return self.channels[channel].out(self._now())

    def next_deadline(self) -> int | None:
        edge = self.channels[0].next_rising_tick(self._fired_upto)
        return None if edge is None else ns_of_tick(edge)

    def advance(self, now_ns: int) -> None:
        tick = tick_at(now_ns)
        edge = self.channels[0].next_rising_tick(self._fired_upto)
        if edge is not None and edge <= tick:
            self.irq.pulse()               # edges missed while late merge into one
        self._fired_upto = max(self._fired_upto, tick)

    def state(self) -> dict[str, Any]:
        tick = self._now()
        return {"channels": [ch.state(tick) for ch in self.channels],
                "next_irq_ns": self.next_deadline()}
