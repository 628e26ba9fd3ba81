"""Booting from the MBR in real mode: firmware, BIOS services, power-off paths."""
from __future__ import annotations

import pytest
from asm import disk_image, needs_as

from sandbox.api import Machine

pytestmark = needs_as

PRINT_SERIAL = """
    mov $0x3f8, %dx
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:
"""


def run_image(tmp_path, source, **kw):
    img = disk_image(tmp_path / "boot.img", source)
    m = Machine.from_image(img, **kw)
    m.power_on()
    outcome = m.run(wall_timeout_s=20)
    vm = m.vm()
    return m, vm, outcome


def test_serial_output_and_acpi_power_off(tmp_path):
    m, vm, outcome = run_image(tmp_path, PRINT_SERIAL + """
    mov $0x604, %dx
    mov $0x2000, %ax
    out %ax, %dx
    cli
    hlt
msg: .asciz "hello, serial\\n"
""")
    assert outcome == "stopped"
    assert vm.console == b"hello, serial\n"
    assert vm.state.value == "powered_off" and vm.exit_status == 0
    assert "ACPI" in vm.exit_reason


def test_boot_drive_in_dl_and_stack(tmp_path):
    m, vm, _ = run_image(tmp_path, """
    mov %dl, %al
    mov $0xf4, %dx
    out %al, %dx
""")
    # isa-debug-exit: status = (value << 1) | 1, with DL = 0x80 (first hard disk)
    assert vm.exit_status == (0x80 << 1) | 1


def test_int10_teletype_writes_vga_text(tmp_path):
    m, vm, _ = run_image(tmp_path, """
    mov $msg, %si
1:  lodsb
    test %al, %al
    jz 2f
    mov $0x0e, %ah
    int $0x10
    jmp 1b
2:  cli
    hlt
msg: .asciz "Hi VGA\\r\\nline two"
""")
    screen = vm.screen()
    assert screen[0].startswith("Hi VGA")
    assert screen[1].startswith("line two")
    assert vm.state.value == "powered_off"
    assert "cli; hlt" in vm.exit_reason


def test_cli_hlt_is_power_off(tmp_path):
    m, vm, _ = run_image(tmp_path, "cli\nhlt\n")
    assert vm.state.value == "powered_off" and vm.exit_status == 0


def test_timer_interrupt_wakes_hlt_in_real_mode(tmp_path):
    # With interrupts on, HLT waits for the BIOS timer (IRQ 0, 18.2 Hz); the BIOS
    # handler counts ticks at 0x46C. Wait for 3 ticks, then report them.
    m, vm, _ = run_image(tmp_path, """
    sti
1:  hlt
    mov 0x46c, %ax
    cmp $3, %ax
    jb 1b
    mov $0xf4, %dx
    out %al, %dx
""")
    assert vm.exit_status == (3 << 1) | 1
    # 3 ticks of a 1.193182 MHz / 65536 timer: about 165 ms of guest time
    assert 150e6 < vm.clock.now() < 200e6


def test_software_interrupt_through_ivt(tmp_path):
    # Install our own handler for int 0x42 in the IVT and call it.
    m, vm, _ = run_image(tmp_path, """
    xor %ax, %ax
    mov %ax, %ds
    movw $handler, 0x42*4
    movw $0, 0x42*4+2
    mov $5, %bl
    int $0x42
    mov %bl, %al
    mov $0xf4, %dx
    out %al, %dx
handler:
    add $10, %bl
    iret
""")
    assert vm.exit_status == (15 << 1) | 1


def test_int13_extended_read_loads_sector(tmp_path):
    src = """
    mov $dap, %si
    mov $0x42, %ah
    int $0x13
    jc fail
    mov 0x8000, %al
    mov $0xf4, %dx
    out %al, %dx
fail:
    mov $0xEE, %al
    mov $0xf4, %dx
    out %al, %dx
dap: .byte 16, 0
    .word 1, 0x8000, 0
    .quad 1
"""
    from asm import boot_sector
    img = tmp_path / "d.img"
    img.write_bytes(boot_sector(src) + bytes([0x2A]) + bytes(511))
    m = Machine.from_image(img)
    m.power_on()
    m.run(wall_timeout_s=20)
    assert m.vm().exit_status == (0x2A << 1) | 1


def test_missing_boot_signature_is_refused(tmp_path):
    from sandbox.errors import ImageError
    img = tmp_path / "nosig.img"
    img.write_bytes(bytes(512))
    m = Machine.from_image(img)
    with pytest.raises(ImageError, match="0x55AA"):
        m.power_on()


def test_unknown_port_reads_ff_and_is_reported_once(tmp_path):
    from sandbox.events import EventRecorder
    img = disk_image(tmp_path / "u.img", """
    mov $0x123, %dx
    in %dx, %al
    in %dx, %al
    out %al, %dx
    mov $0xf4, %dx
    out %al, %dx
""")
    m = Machine.from_image(img)
    rec = EventRecorder(m.events, ["io.unknown_port"])
    m.power_on()
    m.run(wall_timeout_s=20)
    assert m.vm().exit_status == (0xFF << 1) | 1
    assert [e.data["port"] for e in rec.events] == [0x123]


def test_access_beyond_ram_is_open_bus_and_an_isolation_event(tmp_path):
    from sandbox.events import EventRecorder
    # (the guest-driven version is in test_protected_mode.py)
    m = Machine.from_image(disk_image(tmp_path / "o.img", "cli\nhlt\n"))
    rec = EventRecorder(m.events, ["mem.isolation"])
    m.power_on()
    vm = m.vm()
    assert vm.memory.read(0x3000000, 4) == b"\xff" * 4
    vm.memory.write(0x3000000, b"\x00")
    assert vm.memory.read(0x3000000, 1) == b"\xff"
    assert rec.events and rec.events[0].data["gpa"] == 0x3000000


def test_sti_hlt_takes_the_pending_interrupt_after_hlt(tmp_path):
    # An interrupt pending while IF=0 must not be delivered between STI and HLT (the
    # interrupt shadow): it wakes the HLT, and its return address is after the HLT.
    # The test single-steps to the instruction after STI, where a slice could end.
    from asm import boot_sector
    code = boot_sector("""
    cli
    xor %ax, %ax
    mov %ax, %ds
    movw $handler, 0x08*4
    movw $0, 0x08*4+2
    mov $0x0a, %al                  # OCW3: read IRR
    out %al, $0x20
1:  in $0x20, %al
    test $1, %al                    # wait until the timer's IRQ 0 is pending
    jz 1b
    sti
    hlt
after:
    mov saved_ip, %ax
    cmp $after, %ax
    jne 2f
    mov $0x11, %al
    mov $0xf4, %dx
    out %al, %dx
2:  mov $0x22, %al
    mov $0xf4, %dx
    out %al, %dx
handler:
    cmpw $0, saved_ip                # remember only the first interrupt's return address
    jne 3f
    push %bp
    mov %sp, %bp
    mov 2(%bp), %ax
    mov %ax, saved_ip
    pop %bp
3:
    mov $0x20, %al
    out %al, $0x20
    iret
saved_ip: .word 0
""")
    img = tmp_path / "sti.img"
    img.write_bytes(code)
    hlt_at = 0x7C00 + code.index(b"\xfb\xf4") + 1
    m = Machine.from_image(img)
    m.power_on()
    cpu = m.vm().vcpus[0].backend
    m.run(until_ns=m.vm().devices["pit"].next_deadline())   # IRQ 0 just became pending
    for _ in range(1000):
        if cpu.get_regs()["eip"] == hlt_at:
            break
        m.step()
    assert cpu.get_regs()["eip"] == hlt_at and m.vm().pic.has_interrupt()
    m.run(wall_timeout_s=20)
    assert m.vm().exit_status == (0x11 << 1) | 1
