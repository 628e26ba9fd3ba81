"""Lab 1: a boot sector that prints "Hello from <name>" on COM1 and powers off."""
import pytest

RUN_MS = 100          # guest time: a correct sector needs well under 1 ms
PLACEHOLDER = "YOUR NAME HERE"


@pytest.fixture
def name(lab_file):
    return lab_file("name.txt").read_text().strip()


@pytest.fixture
def run(boot, boot_sector):
    return boot(boot_sector("boot.S"), run_ms=RUN_MS, kinds=["exit.io", "io.unknown_port", "mem.isolation"])


@pytest.mark.points(1, hint="Keep `.org 510` and `.word 0xAA55` at the end; read the assembler's message.")
def test_boot_sector_assembles(boot_sector):
    """boot.S assembles into one 512-byte sector with the 0x55AA signature."""
    assert len(boot_sector("boot.S")) == 512


@pytest.mark.points(1, hint="Write your name in name.txt.")
def test_name_filled_in(name):
    """name.txt holds your name, not the placeholder."""
    assert name and name != PLACEHOLDER, "name.txt still holds the placeholder"


@pytest.mark.points(3, hint="Send each byte of the message to port 0x3F8 with outb.")
def test_prints_name_on_com1(run, name):
    """COM1 shows the line `Hello from <name in name.txt>`."""
    assert f"Hello from {name}" in run.lines(), f"COM1 showed {run.console()!r}"


@pytest.mark.points(2, hint="outw 0x2000 to port 0x604 after the message.")
def test_powers_off_through_acpi(run):
    """The VM powers off through ACPI (not a hang, not a crash)."""
    vm = run.vm()
    assert vm.state.value != "running", f"still running after {RUN_MS} ms of guest time: does it power off?"
    assert vm.state.value == "powered_off", f"the VM {vm.state.value}: {vm.exit_reason}"
    assert "ACPI" in (vm.exit_reason or ""), f"it stopped ({vm.exit_reason}), but not through ACPI port 0x604"


@pytest.mark.points(1, hint="Use only COM1 (0x3F8-0x3FF) and ACPI (0x604).")
def test_touches_only_real_devices(run):
    """No I/O to ports without a device, no memory access outside the VM's RAM."""
    stray = run.events.of("io.unknown_port") + run.events.of("mem.isolation")
    assert not stray, f"stray accesses: {[e.data for e in stray[:3]]}"
    assert run.events.of("exit.io"), "no I/O exits at all: nothing reached a device"
