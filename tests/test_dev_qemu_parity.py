"""Co-simulation: one boot sector probes the devices through their ports, under QEMU
and under the sandbox, and both must answer the same, except where this file says
why not. The probe runs a table of port operations and prints the bytes it read.
"""
from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from asm import boot_sector, needs_as

pytestmark = [needs_as, pytest.mark.qemu,
              pytest.mark.skipif(shutil.which("qemu-system-i386") is None, reason="qemu-system-i386 not installed")]

# A tiny interpreter: ops of (kind, port, value); 'W' writes a byte, 'R' stores the byte
# read, 'B' stores it once bit 7 (BSY) is clear, 'N' stores ``value`` words read.
# At the end it prints every stored byte in hex.
INTERPRETER = r"""
    cli
    xor %ax,%ax
    mov %ax,%ds
    mov %ax,%es
    mov %ax,%ss
    mov $0x7c00,%sp
    mov $0x0208,%ax          # int 13h: read 8 sectors (the op table) to 0x7E00
    mov $0x0002,%cx
    xor %dh,%dh
    mov $0x7e00,%bx
    int $0x13
    cld
    mov $0x7e00,%si
    mov $0x9000,%di
next:
    lodsb
    test %al,%al
    jz done
    mov %al,%bl
    lodsw
    mov %ax,%dx
    lodsw
    mov %ax,%cx
    cmp $'W',%bl
    jne 1f
    mov %cl,%al
    out %al,%dx
    jmp next
1:  cmp $'R',%bl
    jne 1f
    in %dx,%al
    stosb
    jmp next
1:  cmp $'B',%bl
    jne 1f
3:  in %dx,%al               # wait while BSY, as every ATA driver does
    test $0x80,%al
    jnz 3b
    stosb
    jmp next
1:  in %dx,%ax
    stosw
    loop 1b
    jmp next
done:
    mov $0x3fc,%dx           # the UART back to normal (the probe used loopback)
    mov $0x03,%al
    out %al,%dx
    mov %di,%cx
    sub $0x9000,%cx
    mov $0x9000,%si
    mov $0x3f8,%dx
print:
    lodsb
    mov %al,%ah
    shr $4,%al
    call hex
    mov %ah,%al
    and $0xf,%al
    call hex
    mov $' ',%al
    out %al,%dx
    loop print
    mov $'$',%al
    out %al,%dx
    mov $0xf4,%dx
    out %al,%dx
hex:
    cmp $10,%al
    jb 2f
    add $7,%al
2:  add $'0',%al
    out %al,%dx
    ret
"""

DISK_SECTORS = 8192                  # 4 MiB: 8 cylinders of 16 x 63


class Probe:
    def __init__(self) -> None:
        self.ops: list[bytes] = []
        self.labels: list[str] = []

    def w(self, port: int, value: int) -> None:
        self.ops.append(struct.pack("<cHH", b"W", port, value))

    def r(self, port: int, label: str) -> None:
        self.ops.append(struct.pack("<cHH", b"R", port, 0))
        self.labels.append(label)

    def ready(self, port: int, label: str) -> None:
        self.ops.append(struct.pack("<cHH", b"B", port, 0))
        self.labels.append(label)

    def words(self, port: int, count: int, label: str) -> None:
        self.ops.append(struct.pack("<cHH", b"N", port, count))
        self.labels += [f"{label} byte {i}" for i in range(2 * count)]

    def cmos(self, index: int) -> None:
        self.w(0x70, index)
        self.r(0x71, f"cmos {index:#04x}")


def build_probe() -> Probe:
    p = Probe()
    # UART: divisor, FIFO, THRE interrupt identification, loopback, overrun, scratch.
    p.w(0x3F9, 0); p.w(0x3FB, 0x80); p.w(0x3F8, 1); p.w(0x3F9, 0); p.r(0x3F8, "uart DLL"); p.w(0x3FB, 0x03)
    p.w(0x3FA, 0xC7); p.r(0x3FA, "uart IIR, FIFO on")
    p.w(0x3F9, 0x02); p.r(0x3FA, "uart IIR after THRI"); p.r(0x3FA, "uart IIR again"); p.w(0x3F9, 0)
    p.w(0x3F9, 0x02); p.r(0x3FA, "uart IIR after THRI again"); p.w(0x3F9, 0)
    p.r(0x3FD, "uart LSR")
    p.w(0x3FC, 0x1A); p.r(0x3FE, "uart MSR entering loopback"); p.r(0x3FE, "uart MSR in loopback")
    p.w(0x3F8, 0x55); p.r(0x3FD, "uart LSR with data"); p.r(0x3F8, "uart RBR looped"); p.r(0x3FD, "uart LSR drained")
    p.w(0x3FA, 0x00); p.w(0x3F8, 1); p.w(0x3F8, 2); p.r(0x3FD, "uart LSR overrun"); p.r(0x3FD, "uart LSR cleared")
    p.r(0x3F8, "uart RBR after overrun"); p.r(0x3FA, "uart IIR, FIFO off")
    p.w(0x3FC, 0x03); p.r(0x3FE, "uart MSR leaving loopback"); p.r(0x3FE, "uart MSR normal"); p.r(0x3FC, "uart MCR")
    p.w(0x3FF, 0xA5); p.r(0x3FF, "uart SCR")
    # PIC: remap, mask, ISR, poll.
    for base in (0x20, 0xA0):
        p.w(base, 0x11)
    for port, value in ((0x21, 0x20), (0xA1, 0x28), (0x21, 4), (0xA1, 2), (0x21, 1), (0xA1, 1), (0x21, 0xFF), (0xA1, 0xFF)):
        p.w(port, value)
    p.r(0x21, "pic master IMR"); p.r(0xA1, "pic slave IMR")
    p.w(0x20, 0x0B); p.r(0x20, "pic master ISR"); p.w(0x20, 0x0C); p.r(0x20, "pic poll"); p.w(0x20, 0x0A)
    # PIT: read-back status and count latch.
    p.w(0x43, 0x34); p.w(0x40, 0x00); p.w(0x40, 0x10); p.w(0x43, 0xE2); p.r(0x40, "pit status ch0 mode 2")
    p.w(0x43, 0xB6); p.w(0x43, 0xE8); p.r(0x42, "pit status ch2 before count")
    p.w(0x42, 0x34); p.w(0x42, 0x12); p.w(0x43, 0xE8); p.r(0x42, "pit status ch2 after count")
    p.w(0x43, 0x80); p.r(0x42, "pit ch2 latch low"); p.r(0x42, "pit ch2 latch high")
    # CMOS: status, memory sizes, date (QEMU runs with -rtc base=2026-01-01,clock=vm).
    for index in (0x0B, 0x0D, 0x10, 0x14, 0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x32, 0x09, 0x08, 0x07, 0x06):
        p.cmos(index)
    p.w(0x70, 0x0B); p.w(0x71, 0x06); p.cmos(0x09); p.w(0x70, 0x0B); p.w(0x71, 0x02)
    # ATA: IDENTIFY, absent device 1, bad command, diagnostic, LBA and CHS reads, commands.
    p.w(0x1F6, 0xA0); p.w(0x1F7, 0xEC); p.ready(0x3F6, "ata alt status, identify"); p.r(0x1F7, "ata status, identify")
    p.words(0x1F0, 256, "identify"); p.r(0x1F7, "ata status after identify")
    p.w(0x1F6, 0xB0); p.r(0x1F7, "ata device 1 status"); p.r(0x1F1, "ata device 1 error")
    p.r(0x3F6, "ata device 1 alt status"); p.r(0x1F6, "ata device 1 device register")
    p.w(0x1F6, 0xA0); p.w(0x1F7, 0xFF); p.ready(0x1F7, "ata status, bad command"); p.r(0x1F1, "ata error, bad command")
    p.w(0x1F7, 0x90); p.ready(0x1F7, "ata status, diagnostic"); p.r(0x1F1, "ata error, diagnostic")
    for port in range(0x1F2, 0x1F7):
        p.r(port, f"ata {port:#x} after diagnostic")
    for device, sector, what in ((0xE0, 3, "lba 3"), (0xA5, 2, "chs 0/5/2")):
        p.w(0x1F6, device); p.w(0x1F2, 1); p.w(0x1F3, sector); p.w(0x1F4, 0); p.w(0x1F5, 0); p.w(0x1F7, 0x20)
        p.ready(0x1F7, f"ata status, read {what}")
        p.words(0x1F0, 256, f"sector {what}")
        p.r(0x1F7, f"ata status after read {what}")
        for port in range(0x1F2, 0x1F7):
            p.r(port, f"ata {port:#x} after read {what}")
    p.w(0x1F6, 0xE0); p.w(0x1F7, 0xF8); p.ready(0x1F7, "ata status, native max")
    for port in range(0x1F3, 0x1F7):
        p.r(port, f"ata {port:#x}, native max")
    p.w(0x1F7, 0xE5); p.ready(0x1F7, "ata status, check power mode"); p.r(0x1F2, "ata check power mode")
    p.w(0x1F2, 3); p.w(0x1F7, 0xC6); p.ready(0x1F7, "ata status, set multiple 3"); p.r(0x1F1, "ata error, set multiple 3")
    # VGA: CRTC registers as mode 3 leaves them.
    p.w(0x3D4, 0x0F); p.w(0x3D5, 0x34); p.r(0x3D5, "vga crtc 0x0f")
    for index in (0x01, 0x09, 0x0A, 0x0B, 0x11, 0x12, 0x13):
        p.w(0x3D4, index); p.r(0x3D5, f"vga crtc {index:#04x}")
    p.r(0x3CC, "vga misc output"); p.r(0x3D4, "vga crtc index")
    # i8042: output port and self-test.
    p.w(0x64, 0xD0); p.r(0x60, "kbc output port"); p.w(0x64, 0xAA); p.r(0x60, "kbc self-test")
    p.r(0x64, "kbc status after self-test")
    p.w(0x80, 0x42); p.r(0x80, "post port")
    return p


def identify_word(label: str) -> int | None:
    return int(label.split()[-1]) // 2 if label.startswith("identify") else None


# IDENTIFY words both must agree on: configuration, CHS, multiple, dword I/O, LBA capacity.
IDENTIFY_WORDS_MATCHING = {0, 1, 3, 6, 47, 48, 54, 55, 56, 59, 60, 61}

# Where the sandbox knowingly differs from QEMU, and why.
DELIBERATE = {
    "uart MSR entering loopback": "the 16550 datasheet sets delta bits when loopback changes the modem inputs; QEMU does not",
    "uart MSR leaving loopback": "the same delta bits, on the way back",
    "pit status ch0 mode 2": "the 8254 datasheet: OUT is high in mode 2 between pulses (QEMU inverts it)",
    "pit status ch2 before count": "the datasheet's NULL COUNT bit after a control word; QEMU never sets it",
    "cmos 0x10": "this machine has no floppy drive (QEMU's default PC has one)",
    "cmos 0x14": "equipment byte: no floppy, no PS/2 mouse",
}


def run_qemu(image: Path, tmp_path: Path) -> str:
    out = tmp_path / "qemu-serial.txt"
    subprocess.run(["qemu-system-i386", "-M", "pc", "-m", "64", "-display", "none", "-monitor", "none",
                    "-serial", f"file:{out}", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                    "-drive", f"file={image},format=raw,if=ide,index=0",
                    "-rtc", "base=2026-01-01T00:00:00,clock=vm", "-no-reboot"],
                   timeout=60, capture_output=True, check=False)
    return out.read_text(errors="replace")


def run_sandbox(image: Path) -> str:
    from sandbox.api import Machine
    m = Machine.from_image(image, memory_mib=64)
    m.power_on()
    m.run(wall_timeout_s=60)
    return m.vm().console.decode(errors="replace")


def parse(text: str) -> list[int]:
    assert "$" in text, f"the probe did not finish: {text[-200:]!r}"
    return [int(t, 16) for t in text[:text.index("$")].split()]


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    probe = build_probe()
    table = b"".join(probe.ops) + b"\0"
    assert len(table) <= 8 * 512
    disk = bytearray(boot_sector(INTERPRETER) + table.ljust(8 * 512, b"\0"))
    for lba in range(9, DISK_SECTORS):
        disk += struct.pack("<H", lba) * 256             # every sector names itself
    image = tmp / "probe.img"
    image.write_bytes(bytes(disk))
    return probe.labels, parse(run_qemu(image, tmp)), parse(run_sandbox(image))


def test_the_probe_ran_to_the_end_on_both(answers):
    labels, qemu, ours = answers
    assert len(qemu) == len(ours) == len(labels)


def test_devices_answer_as_qemu_does_except_where_documented(answers):
    labels, qemu, ours = answers
    differences = []
    for label, a, b in zip(labels, qemu, ours):
        word = identify_word(label)
        if label in DELIBERATE or (word is not None and word not in IDENTIFY_WORDS_MATCHING):
            continue
        if a != b:
            differences.append(f"{label}: QEMU {a:#04x}, sandbox {b:#04x}")
    assert differences == []


def test_the_documented_differences_are_real(answers):
    labels, qemu, ours = answers
    index = {label: i for i, label in enumerate(labels)}
    for label in DELIBERATE:
        assert qemu[index[label]] != ours[index[label]], f"{label} now matches QEMU: drop it from DELIBERATE"
