"""A whole machine on the KVM backend: firmware, BIOS calls and devices, as on Unicorn."""
from __future__ import annotations

import pytest

from asm import disk_image, needs_as
from sandbox.backends.kvm.probe import probe

KVM = probe()
pytestmark = [pytest.mark.kvm, needs_as,
              pytest.mark.skipif(not KVM.usable, reason=f"KVM unusable: {KVM.problem()}")]


def test_boot_sector_uses_serial_bios_and_acpi_power_off(tmp_path):
    from sandbox.api import Machine
    img = disk_image(tmp_path / "boot.img", """
        mov $0x3f8, %dx
        mov $msg, %si
    1:  lodsb
        test %al, %al
        jz 2f
        out %al, %dx
        jmp 1b
    2:  mov $0x0e, %ah          # BIOS teletype: an int 10h through the real-mode IVT
        mov $'K', %al
        int $0x10
        mov $0x604, %dx         # ACPI power off
        mov $0x2000, %ax
        out %ax, %dx
        cli
        hlt
    msg: .asciz "hello from kvm\\n"
    """)
    machine = Machine.from_image(img, backend="kvm", deterministic=False)
    machine.power_on()
    assert machine.run(wall_timeout_s=20) == "stopped"
    vm = machine.vm()
    assert vm.console == b"hello from kvm\n"
    assert vm.screen()[0].startswith("K")
    assert vm.state.value == "powered_off" and "ACPI" in vm.exit_reason
