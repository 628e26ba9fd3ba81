"""A guest driving the ATA disk with PIO: what it writes is in the image file."""
from __future__ import annotations

from asm import disk_image, needs_as

from sandbox.api import Machine

pytestmark = needs_as

WRITE_LBA_2 = r"""
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    # fill a buffer at 0x8000 with "ATA!" repeated
    mov $0x8000, %di
    mov $128, %cx
1:  movl $0x21415441, (%di)
    add $4, %di
    loop 1b
    mov $0x1f6, %dx; mov $0xe0, %al; out %al, %dx     # LBA mode, drive 0, LBA bits 24-27 = 0
    mov $0x1f2, %dx; mov $1, %al; out %al, %dx        # one sector
    mov $0x1f3, %dx; mov $2, %al; out %al, %dx        # LBA 2
    mov $0x1f4, %dx; xor %al, %al; out %al, %dx
    mov $0x1f5, %dx; out %al, %dx
    mov $0x1f7, %dx; mov $0x30, %al; out %al, %dx     # WRITE SECTORS
2:  in %dx, %al
    test $0x08, %al                                   # wait for DRQ
    jz 2b
    mov $0x1f0, %dx
    mov $0x8000, %si
    mov $256, %cx
    rep outsw
    mov $0x1f7, %dx
    mov $0xe7, %al; out %al, %dx                      # FLUSH CACHE
3:  in %dx, %al
    test $0x80, %al                                   # wait while BSY
    jnz 3b
    mov $0xf4, %dx
    out %al, %dx                                      # exit with the final status
"""


def test_ata_pio_write_is_persisted(tmp_path):
    img = disk_image(tmp_path / "disk.img", WRITE_LBA_2, extra=bytes(512 * 7))
    m = Machine.from_image(img)
    flushes = []
    m.events.subscribe(flushes.append, ["disk.flush", "disk.write"])
    m.power_on()
    m.run(wall_timeout_s=20)
    vm = m.vm()
    assert vm.exit_status == (0x50 << 1) | 1          # DRDY | DSC, no error
    m.close()
    data = img.read_bytes()
    assert data[1024:1536] == b"ATA!" * 128
    assert data[512:1024] == bytes(512)               # nothing else touched
    assert [e.kind for e in flushes] == ["disk.write", "disk.flush"]


READ_TWO_SECTORS_WITH_IRQS = r"""
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    movw $irq14, 0x76*4             # IRQ 14 -> vector 0x76 (BIOS slave base 0x70)
    movw $0, 0x76*4+2
    in $0xa1, %al
    and $0xbf, %al                  # unmask IRQ 14 on the slave PIC
    out %al, $0xa1
    sti
    mov $0x3f6, %dx; xor %al, %al; out %al, %dx        # nIEN = 0: interrupts on
    mov $0x1f6, %dx; mov $0xe0, %al; out %al, %dx
    mov $0x1f2, %dx; mov $2, %al; out %al, %dx        # two sectors
    mov $0x1f3, %dx; mov $1, %al; out %al, %dx        # from LBA 1
    mov $0x1f4, %dx; xor %al, %al; out %al, %dx
    mov $0x1f5, %dx; out %al, %dx
    mov $0x1f7, %dx; mov $0x20, %al; out %al, %dx     # READ SECTORS
    mov $0x8000, %di
    cld
2:  mov $0x1f7, %dx
3:  in %dx, %al
    test $0x08, %al
    jz 3b
    mov $0x1f0, %dx
    mov $256, %cx
    rep insw                        # the next sector's IRQ arrives during this
    cmp $0x8400, %di
    jb 2b
    mov $0x8000, %si                # check: word i of the data is i
    xor %bx, %bx
4:  lodsw
    cmp %bx, %ax
    jne bad
    inc %bx
    cmp $512, %bx
    jb 4b
    mov irqs, %al
    mov $0xf4, %dx
    out %al, %dx
bad:
    mov $0xee, %al
    mov $0xf4, %dx
    out %al, %dx
irq14:
    push %ax
    incb irqs
    mov $0x20, %al
    out %al, $0xa0
    out %al, $0x20
    pop %ax
    iret
irqs: .byte 0
"""


def test_rep_insw_with_interrupts_keeps_every_word(tmp_path):
    data = b"".join(i.to_bytes(2, "little") for i in range(512))
    img = disk_image(tmp_path / "r.img", READ_TWO_SECTORS_WITH_IRQS, extra=data + bytes(512 * 6))
    m = Machine.from_image(img)
    m.power_on()
    m.run(wall_timeout_s=20)
    assert m.vm().exit_status == (2 << 1) | 1, m.vm().exit_reason   # both sector IRQs, data intact
