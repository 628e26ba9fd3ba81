"""The 8259A pair, programmed through ports 0x20/0x21 and 0xA0/0xA1 as an OS does."""
from __future__ import annotations

import pytest

from sandbox.devices.pic8259 import PicPair

CMD, DATA = 0, 1


@pytest.fixture
def pic() -> PicPair:
    return PicPair("pic")


def remap(pic: PicPair, master: int = 0x20, slave: int = 0x28, icw1: int = 0x11, icw4: int = 0x01) -> None:
    """The classic remap (Linux, OSDev): ICW1-4 to both chips, then unmask all."""
    pic.master.write(CMD, 1, icw1)
    pic.slave.write(CMD, 1, icw1)
    pic.master.write(DATA, 1, master)        # ICW2: vector base
    pic.slave.write(DATA, 1, slave)
    pic.master.write(DATA, 1, 0x04)          # ICW3: a slave on IR2
    pic.slave.write(DATA, 1, 0x02)           # ICW3: my cascade identity is 2
    pic.master.write(DATA, 1, icw4)          # ICW4: 8086 mode
    pic.slave.write(DATA, 1, icw4)
    pic.master.write(DATA, 1, 0x00)          # OCW1: unmask everything
    pic.slave.write(DATA, 1, 0x00)


def isr(chip) -> int:
    chip.write(CMD, 1, 0x0B)                 # OCW3: read ISR
    value = chip.read(CMD, 1)
    chip.write(CMD, 1, 0x0A)                 # back to IRR
    return value


def eoi(pic: PicPair, irq: int) -> None:
    if irq >= 8:
        pic.slave.write(CMD, 1, 0x20)
    pic.master.write(CMD, 1, 0x20)


def test_power_on_state_matches_the_datasheet(pic):
    for chip in (pic.master, pic.slave):
        assert chip.read(DATA, 1) == 0x00     # IMR clear
        assert chip.read(CMD, 1) == 0x00      # IRR
        assert isr(chip) == 0x00
    assert not pic.has_interrupt()


def test_remap_then_timer_interrupt_then_eoi(pic):
    remap(pic)
    pic.set_irq(0, True)
    pic.set_irq(0, False)                    # the PIT's edge
    assert pic.has_interrupt()
    assert pic.master.read(CMD, 1) == 0x01   # IRR bit 0
    assert pic.acknowledge() == 0x20
    assert pic.master.read(CMD, 1) == 0x00   # moved from IRR ...
    assert isr(pic.master) == 0x01           # ... to ISR
    assert not pic.has_interrupt()
    eoi(pic, 0)
    assert isr(pic.master) == 0x00


def test_lower_number_has_priority_and_blocks_lower_priorities_until_eoi(pic):
    remap(pic)
    pic.set_irq(3, True)
    pic.set_irq(1, True)
    assert pic.acknowledge() == 0x21
    assert not pic.has_interrupt()           # IRQ 3 waits while IRQ 1 is in service
    eoi(pic, 1)
    assert pic.acknowledge() == 0x23


def test_higher_priority_nests_over_lower_in_service(pic):
    remap(pic)
    pic.set_irq(5, True)
    assert pic.acknowledge() == 0x25
    pic.set_irq(0, True)
    assert pic.has_interrupt()               # IRQ 0 outranks IRQ 5 in service
    assert pic.acknowledge() == 0x20
    assert isr(pic.master) == 0x21
    eoi(pic, 0)                              # non-specific EOI ends the highest: IRQ 0
    assert isr(pic.master) == 0x20


def test_mask_holds_requests_until_unmasked(pic):
    remap(pic)
    pic.master.write(DATA, 1, 0x10)          # mask IRQ 4 only
    assert pic.master.read(DATA, 1) == 0x10
    pic.set_irq(4, True)
    assert not pic.has_interrupt()
    pic.master.write(DATA, 1, 0x00)
    assert pic.acknowledge() == 0x24


def test_slave_irq_arrives_through_the_cascade(pic):
    remap(pic)
    pic.set_irq(14, True)                    # the disk
    assert pic.has_interrupt()
    assert pic.acknowledge() == 0x2E
    assert isr(pic.slave) == 0x40
    assert isr(pic.master) == 0x04           # IR2 in service on the master
    eoi(pic, 14)
    assert isr(pic.slave) == 0 and isr(pic.master) == 0


def test_edge_triggered_line_requests_once_per_rising_edge(pic):
    remap(pic)
    pic.set_irq(4, True)
    assert pic.acknowledge() == 0x24
    eoi(pic, 4)
    pic.set_irq(4, True)                     # still high: no new edge
    assert not pic.has_interrupt()
    pic.set_irq(4, False)
    pic.set_irq(4, True)
    assert pic.acknowledge() == 0x24


def test_irq_request_survives_the_line_falling_in_edge_mode(pic):
    remap(pic)
    pic.set_irq(1, True)
    pic.set_irq(1, False)
    assert pic.acknowledge() == 0x21


def test_vanished_level_request_gives_spurious_irq7_without_isr(pic):
    remap(pic, icw1=0x19)                    # level-triggered
    pic.set_irq(5, True)
    pic.set_irq(5, False)
    assert not pic.has_interrupt()
    assert pic.acknowledge() == 0x27         # spurious IRQ 7
    assert isr(pic.master) == 0


def test_spurious_irq15_leaves_only_the_cascade_in_service(pic):
    remap(pic)
    pic.slave.write(CMD, 1, 0x19)            # re-initialise the slave level-triggered
    pic.slave.write(DATA, 1, 0x28)
    pic.slave.write(DATA, 1, 0x02)
    pic.slave.write(DATA, 1, 0x01)
    pic.set_irq(10, True)                    # the master latches the cascade edge
    pic.set_irq(10, False)                   # ... and the slave's request vanishes
    assert pic.acknowledge() == 0x2F         # spurious IRQ 15
    assert isr(pic.slave) == 0
    assert isr(pic.master) == 0x04           # the OS must still EOI the master


def test_auto_eoi_leaves_nothing_in_service(pic):
    remap(pic, icw4=0x03)
    pic.set_irq(0, True)
    assert pic.acknowledge() == 0x20
    assert isr(pic.master) == 0
    pic.set_irq(0, False)
    pic.set_irq(0, True)
    assert pic.acknowledge() == 0x20         # no EOI needed


def test_specific_eoi_ends_the_named_level(pic):
    remap(pic)
    pic.set_irq(6, True)
    pic.acknowledge()
    pic.set_irq(3, True)
    pic.acknowledge()
    assert isr(pic.master) == 0x48
    pic.master.write(CMD, 1, 0x60 | 6)       # specific EOI for IRQ 6
    assert isr(pic.master) == 0x08


def test_set_priority_rotates_who_goes_first(pic):
    remap(pic)
    pic.master.write(CMD, 1, 0xC0 | 4)       # IRQ 4 lowest, so IRQ 5 highest
    pic.set_irq(1, True)
    pic.set_irq(6, True)
    assert pic.acknowledge() == 0x26


def test_rotate_on_non_specific_eoi(pic):
    remap(pic)
    pic.set_irq(0, True)
    pic.acknowledge()
    pic.master.write(CMD, 1, 0xA0)           # rotate on EOI: IRQ 0 becomes lowest
    pic.set_irq(0, False)
    pic.set_irq(0, True)
    pic.set_irq(7, True)
    assert pic.acknowledge() == 0x27


def test_poll_command_reads_and_acknowledges(pic):
    remap(pic)
    pic.set_irq(3, True)
    pic.master.write(CMD, 1, 0x0C)           # OCW3 poll
    assert pic.master.read(CMD, 1) == 0x83
    assert isr(pic.master) == 0x08
    pic.master.write(CMD, 1, 0x0C)
    assert pic.master.read(CMD, 1) == 0x00   # nothing else pending


def test_special_mask_mode_lets_lower_priorities_in(pic):
    remap(pic)
    pic.set_irq(1, True)
    pic.acknowledge()                        # IRQ 1 in service
    pic.master.write(DATA, 1, 0x02)          # mask it
    pic.master.write(CMD, 1, 0x68)           # OCW3: set special mask mode
    pic.set_irq(5, True)
    assert pic.acknowledge() == 0x25


def test_irq2_pin_is_wired_to_irq9(pic):
    remap(pic)
    pic.set_irq(2, True)
    assert pic.acknowledge() == 0x29


def test_interrupt_callback_fires_when_intr_rises(pic):
    seen = []
    pic.on_interrupt = lambda: seen.append(True)
    remap(pic)
    pic.set_irq(12, True)
    assert seen == [True]
    pic.set_irq(1, True)                     # INTR already up: no second call
    assert seen == [True]


def test_unknown_irq_is_refused(pic):
    with pytest.raises(ValueError):
        pic.set_irq(16, True)


def test_reset_forgets_everything(pic):
    remap(pic)
    pic.set_irq(0, True)
    pic.reset()
    assert not pic.has_interrupt()
    assert pic.state()["master"]["vector_base"] == 0
