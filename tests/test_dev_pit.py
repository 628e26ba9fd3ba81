"""The 8254 timer and port 0x61, with a fake guest clock in nanoseconds."""
from __future__ import annotations

import pytest

from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.pit8254 import PIT_HZ, Pit8254, ns_of_tick, tick_at
from sandbox.devices.portb import PortB

CH0, CH1, CH2, MODE = 0, 1, 2, 3
LINUX_HZ100_LATCH = (PIT_HZ + 50) // 100          # 11932, what Linux programs for HZ=100


class Clock:
    def __init__(self) -> None:
        self.now = 0


@pytest.fixture
def rig():
    clock = Clock()
    pulses: list[int] = []

    def set_level(_n: int, level: bool) -> None:
        if level:
            pulses.append(clock.now)

    ctx = DeviceContext(clock=lambda: clock.now, irq=lambda n: IrqLine(n, set_level))
    pit = Pit8254("pit", ctx)
    return clock, pit, PortB("portb", ctx, pit), pulses


def program(pit: Pit8254, channel: int, control: int, count: int) -> None:
    pit.write(MODE, 1, control)
    pit.write(channel, 1, count & 0xFF)
    pit.write(channel, 1, count >> 8)


def run_until(clock: Clock, pit: Pit8254, end_ns: int) -> None:
    """What the hypervisor does: run to each deadline, then let the timer fire."""
    while (deadline := pit.next_deadline()) is not None and deadline <= end_ns:
        clock.now = deadline
        pit.advance(deadline)
    clock.now = end_ns


def test_time_to_ticks_is_exact_integer_arithmetic():
    assert tick_at(1_000_000_000) == PIT_HZ
    assert tick_at(10**9 * 3600) == PIT_HZ * 3600      # an hour: no drift
    for tick in (0, 1, 11932, 10**9 + 7):
        ns = ns_of_tick(tick)
        assert tick_at(ns) == tick and tick_at(ns - 1) == tick - 1


def test_channel0_at_100hz_fires_on_the_exact_tick_boundaries(rig):
    clock, pit, _, pulses = rig
    program(pit, CH0, 0x34, LINUX_HZ100_LATCH)        # channel 0, lo/hi, mode 2
    run_until(clock, pit, 1_000_100_000)
    assert len(pulses) == 100                          # 100 Hz
    assert pulses == [ns_of_tick(k * LINUX_HZ100_LATCH) for k in range(1, 101)]
    gaps = {b - a for a, b in zip(pulses, pulses[1:])}
    # 11932 ticks of 1.193182 MHz are 10,000,150.8 ns: gaps alternate, never drift.
    assert gaps <= {10_000_150, 10_000_151}
    assert pulses[-1] == 1_000_015_086                 # 100 x 11932 ticks, rounded up once


def test_the_tick_after_an_hour_of_guest_time_is_still_exact(rig):
    clock, pit, _, pulses = rig
    program(pit, CH0, 0x34, LINUX_HZ100_LATCH)
    k = 360_000                                        # an hour of 100 Hz ticks
    clock.now = ns_of_tick(k * LINUX_HZ100_LATCH) - 1
    pit.advance(clock.now)                             # everything before it has fired
    assert pit.next_deadline() == ns_of_tick(k * LINUX_HZ100_LATCH) == 3_600_054_308_564


def test_no_interrupt_before_the_deadline(rig):
    clock, pit, _, pulses = rig
    program(pit, CH0, 0x34, LINUX_HZ100_LATCH)
    first = pit.next_deadline()
    clock.now = first - 1
    pit.advance(first - 1)
    assert pulses == []
    clock.now = first
    pit.advance(first)
    assert pulses == [first]


def test_late_advance_fires_once_and_schedules_the_next_edge_in_the_future(rig):
    clock, pit, _, pulses = rig
    program(pit, CH0, 0x34, 1193)                      # ~1 kHz
    clock.now = 50_000_000
    pit.advance(clock.now)
    assert len(pulses) == 1                            # missed ticks merge, as at a real PIC
    assert pit.next_deadline() > clock.now


def test_power_on_channel0_runs_at_18_2_hz_like_qemu(rig):
    clock, pit, _, pulses = rig
    assert pit.next_deadline() == ns_of_tick(65536)
    run_until(clock, pit, 10**9)
    assert len(pulses) == 18


def test_reading_the_count_shows_it_counting_down(rig):
    clock, pit, _, _ = rig
    program(pit, CH0, 0x34, 1000)
    clock.now = ns_of_tick(250)
    lo, hi = pit.read(CH0, 1), pit.read(CH0, 1)
    assert lo | hi << 8 == 750
    clock.now = ns_of_tick(1000)                       # reloaded
    assert pit.read(CH0, 1) | pit.read(CH0, 1) << 8 == 1000


def test_latch_command_freezes_the_value_until_read(rig):
    clock, pit, _, _ = rig
    program(pit, CH0, 0x34, 5000)
    clock.now = ns_of_tick(100)
    pit.write(MODE, 1, 0x00)                           # latch channel 0
    clock.now = ns_of_tick(900)
    assert pit.read(CH0, 1) | pit.read(CH0, 1) << 8 == 4900
    assert pit.read(CH0, 1) | pit.read(CH0, 1) << 8 == 4100   # live again


def test_read_back_command_latches_status_then_count(rig):
    clock, pit, _, _ = rig
    program(pit, CH2, 0xB6, 0x1234)                    # channel 2, lo/hi, mode 3
    pit.write(MODE, 1, 0xC8)                           # read-back: count and status of ch 2
    status = pit.read(CH2, 1)
    assert status == 0x36 | 0x80                       # OUT high, lo/hi, mode 3, binary
    assert pit.read(CH2, 1) | pit.read(CH2, 1) << 8 == 0x1234   # gate low: not counting


def test_status_shows_null_count_until_the_count_is_written(rig):
    _, pit, _, _ = rig
    pit.write(MODE, 1, 0x30)                           # channel 0, lo/hi, mode 0
    pit.write(MODE, 1, 0xE2)                           # read-back status only
    assert pit.read(CH0, 1) == 0x70                    # OUT low, null count, lo/hi, mode 0


def test_lobyte_and_hibyte_access_modes(rig):
    clock, pit, _, _ = rig
    pit.write(MODE, 1, 0x14)                           # channel 0, lobyte only, mode 2
    pit.write(CH0, 1, 200)
    clock.now = ns_of_tick(50)
    assert pit.read(CH0, 1) == 150
    pit.write(MODE, 1, 0x24)                           # hibyte only
    pit.write(CH0, 1, 0x02)                            # count 0x200
    assert pit.read(CH0, 1) == 0x02


def test_bcd_counting(rig):
    clock, pit, _, _ = rig
    pit.write(MODE, 1, 0x35)                           # lo/hi, mode 2, BCD
    pit.write(CH0, 1, 0x00)
    pit.write(CH0, 1, 0x10)                            # 1000 decimal
    clock.now = ns_of_tick(1)
    assert pit.read(CH0, 1) | pit.read(CH0, 1) << 8 == 0x0999


def test_mode0_one_shot_interrupts_once(rig):
    clock, pit, _, pulses = rig
    program(pit, CH0, 0x30, 1193)                      # ~1 ms one-shot
    run_until(clock, pit, 10_000_000)
    assert pulses == [ns_of_tick(1193)]
    assert pit.next_deadline() is None


def test_mode4_oneshot_as_linux_clockevents_uses_it(rig):
    clock, pit, _, pulses = rig
    clock.now = 5_000
    start = tick_at(clock.now)
    program(pit, CH0, 0x38, 100)                       # mode 4: strobe after the count
    run_until(clock, pit, 1_000_000)
    assert pulses == [ns_of_tick(start + 101)]         # OUT rises a tick after zero


def test_channel2_calibration_through_port_61(rig):
    """Linux's pit_calibrate_tsc: gate channel 2, mode 0, poll port 0x61 bit 5."""
    clock, pit, portb, _ = rig
    portb.write(0, 1, (portb.read(0, 1) & ~0x02) | 0x01)   # gate on, speaker off
    latch = PIT_HZ // 20                               # 50 ms
    program(pit, CH2, 0xB0, latch)
    start = tick_at(clock.now)
    clock.now = ns_of_tick(start + latch) - 1
    assert not portb.read(0, 1) & 0x20                 # still counting
    clock.now += 1
    assert portb.read(0, 1) & 0x20                     # terminal count: OUT2 high


def test_gate_low_pauses_mode0(rig):
    clock, pit, portb, _ = rig
    portb.write(0, 1, 0x01)
    program(pit, CH2, 0xB0, 1000)
    clock.now = ns_of_tick(300)
    portb.write(0, 1, 0x00)                            # gate off: frozen at 700
    clock.now = ns_of_tick(5000)
    assert pit.read(CH2, 1) | pit.read(CH2, 1) << 8 == 700
    portb.write(0, 1, 0x01)
    clock.now = ns_of_tick(5100)
    assert pit.read(CH2, 1) | pit.read(CH2, 1) << 8 == 600


def test_port_61_refresh_bit_toggles_on_every_read(rig):
    _, _, portb, _ = rig
    bits = [portb.read(0, 1) & 0x10 for _ in range(4)]
    assert bits == [0x10, 0, 0x10, 0]


def test_speaker_tone_is_reported(rig):
    _, pit, portb, _ = rig
    program(pit, CH2, 0xB6, 1193)
    portb.write(0, 1, 0x03)
    assert round(portb.state()["tone_hz"]) == 1000
    assert portb.read(0, 1) & 0x03 == 0x03


def test_mode3_square_wave_output_and_values(rig):
    clock, pit, portb, _ = rig
    portb.write(0, 1, 0x01)
    program(pit, CH2, 0xB6, 100)
    clock.now = ns_of_tick(10)
    assert pit.output(2) and pit.read(CH2, 1) == 80    # decrements by two
    pit.read(CH2, 1)
    clock.now = ns_of_tick(60)
    assert not pit.output(2)                           # second half: low


def test_reset_restores_power_on(rig):
    clock, pit, _, _ = rig
    program(pit, CH0, 0x30, 5)
    pit.reset()
    assert pit.state()["channels"][0]["mode"] == 3
