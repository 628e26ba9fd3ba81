"""The BIOS ROM image at F000:0000 (guest-physical 0xF0000-0xFFFFF).

The virtual firmware is mostly Python (``bios.py``), but guests reach it the way
they reach any BIOS: ``int 10h`` jumps through the real-mode IVT to code in ROM. Each
service vector points at a three-byte stub::

    out 0xB2, al    ; trap into the hypervisor: the I/O exit *is* the BIOS call
    iret            ; return to the caller with the results in registers/FLAGS

Port 0xB2 is where a real PC's firmware traps into System Management Mode, so the
analogy is exact: the OUT leaves the guest, the hypervisor serves the call and the
guest continues at the IRET. Which service was called is known from the stub's
address. Hardware interrupt handlers (the timer tick, end-of-interrupt for the PIC)
are real x86 code, written out below byte by byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field

ROM_SEGMENT = 0xF000
ROM_BASE = 0xF0000
ROM_SIZE = 0x10000
TRAP_PORT = 0xB2

STUBS = 0xE000          # service stubs: STUBS + 4 * vector
IRQ_CODE = 0xD000       # hardware interrupt handlers and the int 16h wait loop
WAIT_FLAG = 0xD1F0      # byte the int 16h trap sets to 1 when the caller must wait
RESET_VECTOR = 0xFFF0

# Services served by the hypervisor (see bios_services.py for what each call does).
SERVICE_VECTORS = (0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x18, 0x19, 0x1A)
KEYBOARD_VECTOR = 0x16

# --- hardware interrupt handlers (16-bit real-mode machine code) ---------------------
TIMER_HANDLER = bytes([
    0x1E,                    # push ds
    0x50,                    # push ax
    0x31, 0xC0,              # xor ax, ax
    0x8E, 0xD8,              # mov ds, ax
    0xFF, 0x06, 0x6C, 0x04,  # inc word [0x46C]      ; BDA tick count, low word
    0x75, 0x04,              # jnz +4
    0xFF, 0x06, 0x6E, 0x04,  # inc word [0x46E]      ; high word
    0xCD, 0x1C,              # int 0x1C              ; user timer hook
    0xB0, 0x20,              # mov al, 0x20          ; non-specific EOI
    0xE6, 0x20,              # out 0x20, al          ; to the master PIC
    0x58,                    # pop ax
    0x1F,                    # pop ds
    0xCF,                    # iret
])
MASTER_EOI_HANDLER = bytes([0x50, 0xB0, 0x20, 0xE6, 0x20, 0x58, 0xCF])
#                          push ax; mov al,0x20; out 0x20,al; pop ax; iret
SLAVE_EOI_HANDLER = bytes([0x50, 0xB0, 0x20, 0xE6, 0xA0, 0xE6, 0x20, 0x58, 0xCF])
#                          push ax; mov al,0x20; out 0xA0,al; out 0x20,al; pop ax; iret
IRET = bytes([0xCF])


def keyboard_routine(start: int) -> bytes:
    """int 16h: trap; if the hypervisor says "no key yet", idle until an interrupt
    (the BIOS timer tick) and ask again, exactly as a real BIOS waits for a key."""
    code = bytearray()
    code += bytes([0xE6, TRAP_PORT])                                  # out 0xB2, al
    code += bytes([0x2E, 0x80, 0x3E]) + WAIT_FLAG.to_bytes(2, "little") + b"\x00"  # cmp byte cs:[flag], 0
    code += bytes([0x75, 0x01])                                       # jne wait
    code += bytes([0xCF])                                             # iret
    code += bytes([0xFB, 0xF4, 0xFA])                                 # wait: sti; hlt; cli
    rel = -(len(code) + 2)
    code += bytes([0xEB, rel & 0xFF])                                 # jmp start
    return bytes(code)


@dataclass
class RomImage:
    data: bytearray
    ivt: dict[int, tuple[int, int]] = field(default_factory=dict)   # vector -> (segment, offset)
    traps: dict[int, int] = field(default_factory=dict)             # trap IP -> vector


def build_rom() -> RomImage:
    rom = RomImage(bytearray(ROM_SIZE))
    put = rom.data.__setitem__

    def place(offset: int, code: bytes) -> int:
        put(slice(offset, offset + len(code)), code)
        return offset

    default = place(IRQ_CODE, IRET)
    for vector in range(256):
        rom.ivt[vector] = (ROM_SEGMENT, default)
    timer = place(IRQ_CODE + 0x10, TIMER_HANDLER)
    master = place(IRQ_CODE + 0x40, MASTER_EOI_HANDLER)
    slave = place(IRQ_CODE + 0x50, SLAVE_EOI_HANDLER)
    rom.ivt[0x08] = (ROM_SEGMENT, timer)
    for irq in range(1, 8):
        rom.ivt[0x08 + irq] = (ROM_SEGMENT, master)
    for irq in range(8):
        rom.ivt[0x70 + irq] = (ROM_SEGMENT, slave)
    kbd = place(IRQ_CODE + 0x100, keyboard_routine(IRQ_CODE + 0x100))
    rom.ivt[KEYBOARD_VECTOR] = (ROM_SEGMENT, kbd)
    rom.traps[kbd] = KEYBOARD_VECTOR
    for vector in SERVICE_VECTORS:
        stub = place(STUBS + 4 * vector, bytes([0xE6, TRAP_PORT, 0xCF, 0x90]))
        rom.ivt[vector] = (ROM_SEGMENT, stub)
        rom.traps[stub] = vector
    # Reset vector: a trap that asks the hypervisor to run POST and boot again.
    place(RESET_VECTOR, bytes([0xE6, TRAP_PORT, 0xFA, 0xF4]))        # out 0xB2,al; cli; hlt
    rom.traps[RESET_VECTOR] = -1
    place(0xFFF5, b"11/25/26")                                      # BIOS date string
    put(0xFFFE, 0xFC)                                               # model byte: AT
    return rom
