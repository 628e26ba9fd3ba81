"""The small PC devices and the device table, driven through their ports."""
from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from sandbox.devices import registry
from sandbox.devices.acpi_pm import AcpiPm1Control
from sandbox.devices.base import Device, DeviceContext, IrqLine
from sandbox.devices.cmos_rtc import CmosRtc
from sandbox.devices.debug_exit import DebugExit
from sandbox.devices.i8042 import I8042
from sandbox.devices.port92 import Port92
from sandbox.devices.post import PostPort
from sandbox.hypervisor.bus import Bus


class Machine:
    """Records every machine-level action a device asks for."""

    def __init__(self) -> None:
        self.now = 0
        self.actions: list[tuple] = []
        self.lines: dict[int, IrqLine] = {}
        self.ctx = DeviceContext(
            clock=lambda: self.now, irq=self._line,
            power_off=lambda reason, status: self.actions.append(("off", reason, status)),
            reset=lambda: self.actions.append(("reset",)),
            set_a20=lambda on: self.actions.append(("a20", on)))

    def _line(self, n: int) -> IrqLine:
        self.lines[n] = IrqLine(n, lambda _n, _level: None)
        return self.lines[n]


@pytest.fixture
def m() -> Machine:
    return Machine()


# --- ACPI and isa-debug-exit: how guests switch the machine off ------------------------------
def test_acpi_slp_en_powers_off(m):
    pm = AcpiPm1Control("acpi", m.ctx)
    pm.write(0, 2, 0x0001)                        # SCI_EN only
    assert m.actions == [] and pm.read(0, 2) == 0x0001
    pm.write(0, 2, 0x2000)                        # outw(0x604, 0x2000): QEMU's power-off
    assert m.actions == [("off", "ACPI power-off", 0)]
    assert pm.read(0, 2) & 0x2000 == 0            # SLP_EN reads 0


def test_acpi_byte_write_to_the_high_half(m):
    pm = AcpiPm1Control("acpi", m.ctx)
    pm.write(1, 1, 0x20)                          # outb(0x605, 0x20)
    assert m.actions == [("off", "ACPI power-off", 0)]


@pytest.mark.parametrize("value, size, status", [(0x00, 1, 1), (0x10, 1, 0x21), (0x31, 4, 0x63)])
def test_isa_debug_exit_status_is_value_shifted_plus_one(m, value, size, status):
    DebugExit("debug-exit", m.ctx).write(0, size, value)
    assert m.actions == [("off", "isa-debug-exit", status)]


# --- A20 and reset --------------------------------------------------------------------------------
def test_port92_fast_a20_and_reset(m):
    p = Port92("port92", m.ctx)
    p.write(0, 1, p.read(0, 1) | 0x02)            # in al,0x92; or al,2; out 0x92,al
    assert m.actions == [("a20", True)] and p.read(0, 1) & 0x02
    p.write(0, 1, 0x00)
    assert m.actions[-1] == ("a20", False)
    p.write(0, 1, 0x03)                           # bit 0 rising: reset
    assert m.actions[-1] == ("reset",)
    p.write(0, 1, 0x03)                           # no new edge: no second reset
    assert m.actions.count(("reset",)) == 1


def kbc_wait_input_empty(kbc: I8042) -> None:
    assert not kbc.command.read(0, 1) & 0x02      # IBF clear: ready for a byte


def test_i8042_a20_sequence_as_linux_boot_code_does_it(m):
    kbc = I8042("i8042", m.ctx)
    kbc_wait_input_empty(kbc)
    kbc.command.write(0, 1, 0xD1)                 # write output port
    kbc_wait_input_empty(kbc)
    kbc.write(0, 1, 0xDF)                         # A20 on, not in reset
    kbc.command.write(0, 1, 0xFF)                 # null command (UHCI workaround)
    assert m.actions == [("a20", True)]
    kbc.command.write(0, 1, 0xD0)                 # read the output port back
    assert kbc.command.read(0, 1) & 0x01          # OBF
    assert kbc.read(0, 1) == 0xDF


def test_i8042_a20_off_and_on_commands(m):
    kbc = I8042("i8042", m.ctx)
    kbc.command.write(0, 1, 0xDD)
    kbc.command.write(0, 1, 0xDF)
    assert m.actions == [("a20", False), ("a20", True)]


def test_i8042_pulse_reset(m):
    kbc = I8042("i8042", m.ctx)
    kbc.command.write(0, 1, 0xFE)
    assert m.actions == [("reset",)]


def test_i8042_command_byte_round_trip_and_irq1(m):
    kbc = I8042("i8042", m.ctx)
    kbc.command.write(0, 1, 0x20)                 # read command byte
    assert m.lines[1].level                       # the reply interrupts (bit 0 set)
    first = kbc.read(0, 1)
    assert not m.lines[1].level
    kbc.command.write(0, 1, 0x60)
    kbc.write(0, 1, first & ~0x01 | 0x44)         # no IRQ 1, system flag, translation
    kbc.command.write(0, 1, 0x20)
    assert not m.lines[1].level
    assert kbc.read(0, 1) == first & ~0x01 | 0x44
    assert kbc.command.read(0, 1) & 0x04          # system flag in the status register


def test_i8042_self_test_and_keyboard_disable(m):
    kbc = I8042("i8042", m.ctx)
    kbc.command.write(0, 1, 0xAA)
    assert kbc.read(0, 1) == 0x55
    kbc.command.write(0, 1, 0xAD)                 # disable the keyboard
    kbc.feed_scancodes(b"\x1e\x9e")               # 'a' pressed and released
    assert not kbc.command.read(0, 1) & 0x01      # held back
    kbc.command.write(0, 1, 0xAE)
    assert [kbc.read(0, 1), kbc.read(0, 1)] == [0x1E, 0x9E]


def test_keyboard_reset_and_identify_replies(m):
    kbc = I8042("i8042", m.ctx)
    kbc.write(0, 1, 0xFF)                         # keyboard: reset
    assert [kbc.read(0, 1), kbc.read(0, 1)] == [0xFA, 0xAA]
    kbc.write(0, 1, 0xF2)
    assert [kbc.read(0, 1) for _ in range(3)] == [0xFA, 0xAB, 0x83]
    kbc.write(0, 1, 0xED)                         # LEDs, then the parameter
    kbc.write(0, 1, 0x07)
    assert [kbc.read(0, 1), kbc.read(0, 1)] == [0xFA, 0xFA]
    assert kbc.state()["leds"] == 7


# --- CMOS / RTC --------------------------------------------------------------------------------
def cmos(rtc: CmosRtc, index: int) -> int:
    rtc.write(0, 1, index)
    return rtc.read(1, 1)


def cmos_set(rtc: CmosRtc, index: int, value: int) -> None:
    rtc.write(0, 1, index)
    rtc.write(1, 1, value)


def read_time(rtc: CmosRtc) -> tuple[int, ...]:
    return tuple(cmos(rtc, i) for i in (0x32, 0x09, 0x08, 0x07, 0x04, 0x02, 0x00))


def test_rtc_starts_at_the_epoch_in_bcd(m):
    rtc = CmosRtc("rtc", m.ctx, memory_mib=64)
    assert read_time(rtc) == (0x20, 0x26, 0x01, 0x01, 0x00, 0x00, 0x00)
    assert cmos(rtc, 0x06) == 5                   # 2026-01-01 is a Thursday (Sunday = 1)
    assert cmos(rtc, 0x0B) == 0x02 and cmos(rtc, 0x0D) == 0x80


def test_rtc_follows_guest_time_deterministically(m):
    rtc = CmosRtc("rtc", m.ctx)
    m.now = (86400 + 3661) * 10**9 + 500_000_000  # a day, 1 h 1 min 1.5 s later
    assert read_time(rtc) == (0x20, 0x26, 0x01, 0x02, 0x01, 0x01, 0x01)


def test_rtc_binary_and_12_hour_modes(m):
    rtc = CmosRtc("rtc", m.ctx, epoch=datetime(2026, 7, 4, 13, 45, 30))
    cmos_set(rtc, 0x0B, 0x04)                     # binary, 12-hour
    assert cmos(rtc, 0x04) == 0x80 | 1            # 1 PM
    assert cmos(rtc, 0x02) == 45
    cmos_set(rtc, 0x0B, 0x06)                     # binary, 24-hour
    assert cmos(rtc, 0x04) == 13


def test_update_in_progress_in_the_last_244_us_of_each_second(m):
    rtc = CmosRtc("rtc", m.ctx)
    m.now = 10**9 - 244_001
    assert not cmos(rtc, 0x0A) & 0x80
    m.now = 10**9 - 244_000
    assert cmos(rtc, 0x0A) == 0x80 | 0x26
    m.now = 10**9
    assert not cmos(rtc, 0x0A) & 0x80


def test_setting_the_clock_with_the_set_bit(m):
    rtc = CmosRtc("rtc", m.ctx)
    cmos_set(rtc, 0x0B, 0x82)                     # SET: updates stop
    for index, value in ((0x09, 0x99), (0x08, 0x12), (0x07, 0x31), (0x04, 0x23), (0x02, 0x59), (0x00, 0x58)):
        cmos_set(rtc, index, value)
    m.now = 5 * 10**9
    assert cmos(rtc, 0x00) == 0x58                # frozen while SET is on
    cmos_set(rtc, 0x32, 0x20)
    cmos_set(rtc, 0x0B, 0x02)                     # run again
    m.now = 7 * 10**9
    assert read_time(rtc) == (0x21, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00)   # 2099 rolled over


def test_cmos_memory_size_and_equipment(m):
    rtc = CmosRtc("rtc", m.ctx, memory_mib=64)
    assert cmos(rtc, 0x15) | cmos(rtc, 0x16) << 8 == 640
    assert cmos(rtc, 0x17) | cmos(rtc, 0x18) << 8 == 63 * 1024
    assert cmos(rtc, 0x30) | cmos(rtc, 0x31) << 8 == 63 * 1024
    assert cmos(rtc, 0x34) | cmos(rtc, 0x35) << 8 == (64 - 16) * 16
    assert cmos(rtc, 0x10) == 0x00                # no floppy
    assert cmos(rtc, 0x14) & 0x02                 # FPU present
    checksum = sum(cmos(rtc, i) for i in range(0x10, 0x2E))
    assert cmos(rtc, 0x2E) << 8 | cmos(rtc, 0x2F) == checksum


def test_cmos_index_carries_the_nmi_disable_bit(m):
    rtc = CmosRtc("rtc", m.ctx)
    rtc.write(0, 1, 0x80 | 0x50)
    rtc.write(1, 1, 0x42)
    assert rtc.nmi_disabled
    assert cmos(rtc, 0x50) == 0x42 and not rtc.nmi_disabled


def test_rtc_periodic_interrupt(m):
    rtc = CmosRtc("rtc", m.ctx)
    assert rtc.next_deadline() is None
    cmos_set(rtc, 0x0B, 0x42)                     # PIE, 1024 Hz (rate 6 in status A)
    deadline = rtc.next_deadline()
    assert deadline == 976_563                    # 32 ticks of 32768 Hz, rounded up
    m.now = deadline
    rtc.advance(deadline)
    assert m.lines[8].level
    assert rtc.next_deadline() is None            # no new edge until C is read
    assert cmos(rtc, 0x0C) == 0xC0                # IRQF | PF
    assert not m.lines[8].level
    assert cmos(rtc, 0x0C) == 0x00


def test_rtc_update_ended_flag_by_polling(m):
    rtc = CmosRtc("rtc", m.ctx)
    cmos(rtc, 0x0C)
    m.now = 10**9
    assert cmos(rtc, 0x0C) & 0x10                 # UF without interrupts enabled


# --- POST port ---------------------------------------------------------------------------------
def test_post_port_keeps_the_last_code(m):
    post = PostPort("post", m.ctx)
    post.write(0, 1, 0x12)
    post.write(0, 1, 0x34)
    assert post.state() == {"last_code": 0x34, "writes": 2}
    assert post.read(0, 1) == 0xFF                # reads float, as in QEMU


# --- the device table -----------------------------------------------------------------------------
def build():
    """Exactly what the builder does with PC_DEVICES, noting which IRQs each device takes."""
    bus = Bus("io")
    m = Machine()
    requested: dict[str, set[int]] = {}
    parts = registry.MachineParts(memory_mib=32)
    for spec in registry.PC_DEVICES:
        asked = requested[spec.name] = set()
        ctx = dataclasses.replace(m.ctx, irq=lambda n, asked=asked: (asked.add(n), m._line(n))[1])
        dev = spec.factory(spec.name, ctx, parts)
        for base, length, attr in spec.windows:
            bus.register(base, length, getattr(dev, attr) if attr else dev)
        parts.register(spec.name, dev)
    return bus, parts, requested


def test_every_pc_device_is_created_and_wired_without_overlap():
    bus, parts, _ = build()
    names = [s.name for s in registry.PC_DEVICES]
    assert len(names) == len(set(names))
    assert names.index("pic") == 0 and names.index("pit") < names.index("portb")
    ports = {m.base: m.device.name for m in bus.mappings()}
    assert ports == {0x20: "pic.master", 0xA0: "pic.slave", 0x40: "pit", 0x61: "portb",
                     0x70: "rtc", 0x3F8: "com1", 0x60: "i8042", 0x64: "i8042.command",
                     0x92: "port92", 0x1F0: "ata0", 0x3F6: "ata0.control", 0x3C0: "vga",
                     0x604: "acpi-pm", 0xF4: "debug-exit", 0x80: "post"}
    assert parts.pic is parts.devices["pic"] and parts.pit is parts.devices["pit"]


def test_the_table_names_the_irq_each_device_really_uses():
    _, _, requested = build()
    for spec in registry.PC_DEVICES:
        if spec.irq is None:
            assert requested[spec.name] == set(), spec.name
        else:
            assert spec.irq in requested[spec.name], spec.name


def test_every_device_and_table_entry_explains_itself():
    _, parts, _ = build()
    for spec in registry.PC_DEVICES:
        assert spec.description.endswith(".") and len(spec.description) > 20
        dev = parts.devices[spec.name]
        assert isinstance(dev, Device)
        assert dev.description != Device.description
        assert isinstance(dev.state(), dict)
        for _, _, attr in spec.windows:
            if attr:
                assert getattr(dev, attr).description != Device.description


def test_an_io_port_sequence_through_the_bus_reaches_the_devices():
    bus, parts, _ = build()
    bus.write(0x3F8 + 3, 1, 0x03)
    assert bus.read(0x3F8 + 3, 1) == 0x03
    bus.write(0x3D4, 1, 0x0F)
    bus.write(0x3D5, 1, 7)
    assert parts.devices["vga"].cursor() == (0, 7)
    assert bus.read(0x1F7, 1) == 0                # no disk: nothing on the channel
