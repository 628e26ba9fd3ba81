"""The virtual firmware: power-on self test, boot from the MBR, and BIOS services.

POST runs in the hypervisor (as a real BIOS runs before any OS), writing what a PC
BIOS leaves behind: the ROM at 0xF0000, the interrupt vector table, the BIOS data
area, the PIC remapped to vectors 08h/70h and the PIT ticking at 18.2 Hz (both
programmed through their I/O ports, like real firmware). Then it reads LBA 0 of the
boot disk to 0x7C00 and jumps there with DL = 0x80.

Later BIOS calls arrive as I/O exits on the trap port (see ``rom.py``) and are looked
up in the service table (``services.py``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from sandbox.errors import ImageError
from sandbox.firmware import bios_disk, bios_serial, bios_system, bios_video  # noqa: F401  (register services)
from sandbox.firmware.bios_call import BiosCall
from sandbox.firmware.rom import ROM_BASE, ROM_SEGMENT, WAIT_FLAG, RomImage, build_rom
from sandbox.firmware.services import lookup
from sandbox.storage.base import SECTOR

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.storage.base import BlockImage
    from sandbox.vm.memory import GuestMemory

BOOT_ADDRESS = 0x7C00
BOOT_DRIVE = 0x80
BDA = 0x400


class FirmwareMachine(Protocol):
    """What the firmware needs from its VM (sandbox.vm.machine.VirtualMachine)."""
    name: str
    memory: "GuestMemory"
    disk: "BlockImage | None"

    def port_write(self, port: int, value: int, size: int = 1) -> None: ...
    def clock_ns(self) -> int: ...
    def publish(self, kind: str, **data: object) -> None: ...
    def traced(self, kind: str) -> bool: ...
    def power_off(self, reason: str, status: int) -> None: ...
    def request_reset(self) -> None: ...
    def serial_key(self, consume: bool) -> int | None: ...
    def set_a20(self, on: bool) -> None: ...


class Firmware:
    def __init__(self, vm: FirmwareMachine) -> None:
        self.vm = vm
        self.rom: RomImage = build_rom()
        self.calls = 0

    # --- what services use -----------------------------------------------------------
    @property
    def memory(self) -> "GuestMemory":
        return self.vm.memory

    @property
    def memory_bytes(self) -> int:
        return self.vm.memory.size

    @property
    def disk(self) -> "BlockImage | None":
        return self.vm.disk

    def disk_sectors(self) -> int:
        return self.disk.size() // SECTOR if self.disk else 0

    def disk_read(self, lba: int, count: int) -> bytes:
        self.vm.publish("disk.read", lba=lba, count=count, source="bios")
        return self.disk.read(lba * SECTOR, count * SECTOR)

    def disk_write(self, lba: int, data: bytes) -> None:
        self.vm.publish("disk.write", lba=lba, count=len(data) // SECTOR, source="bios")
        self.disk.write(lba * SECTOR, data)
        self.disk.flush()

    def port_write(self, port: int, value: int) -> None:
        self.vm.port_write(port, value)

    def clock_ns(self) -> int:
        return self.vm.clock_ns()

    def set_a20(self, on: bool) -> None:
        self.vm.set_a20(on)

    def serial_key(self, consume: bool) -> int | None:
        return self.vm.serial_key(consume)

    def port_read(self, port: int) -> int:
        return self.vm.port_read(port)

    def keyboard_wait(self, wait: bool) -> None:
        self.memory.write(ROM_BASE + WAIT_FLAG, bytes((int(wait),)))

    def power_off(self, reason: str, status: int) -> None:
        self.vm.power_off(reason, status)

    def request_reset(self) -> None:
        self.vm.request_reset()

    # --- power-on self test -----------------------------------------------------------
    def post(self) -> None:
        mem = self.memory
        mem.write(ROM_BASE, self.rom.data)
        ivt = bytearray(1024)
        for vector, (seg, off) in self.rom.ivt.items():
            ivt[vector * 4:vector * 4 + 4] = off.to_bytes(2, "little") + seg.to_bytes(2, "little")
        mem.write(0, ivt)
        bda = bytearray(256)
        bda[0x00:0x02] = (0x3F8).to_bytes(2, "little")      # COM1 base port
        bda[0x0E:0x10] = (0x9FC0).to_bytes(2, "little")     # EBDA segment
        bda[0x10:0x12] = (0x0221).to_bytes(2, "little")     # equipment: 1 serial, 80x25 colour
        bda[0x13:0x15] = (639).to_bytes(2, "little")        # conventional memory, KiB
        bda[0x49] = 0x03                                    # video mode 3
        bda[0x4A:0x4C] = (80).to_bytes(2, "little")         # columns
        bda[0x60:0x62] = (0x0607).to_bytes(2, "little")     # cursor shape
        bda[0x63:0x65] = (0x3D4).to_bytes(2, "little")      # CRTC port
        bda[0x75] = 1 if self.disk else 0                   # hard disks
        bda[0x84] = 24                                      # rows - 1
        mem.write(BDA, bda)
        mem.write(0x9FC00, bytes(0x400))                    # EBDA
        # Program the interrupt controllers as a PC BIOS does: master at 08h, slave at 70h.
        for port, value in ((0x20, 0x11), (0x21, 0x08), (0x21, 0x04), (0x21, 0x01),
                            (0xA0, 0x11), (0xA1, 0x70), (0xA1, 0x02), (0xA1, 0x01),
                            (0x21, 0xF8), (0xA1, 0xFF),
                            (0x43, 0x36), (0x40, 0x00), (0x40, 0x00)):   # PIT ch0 mode 3, 18.2 Hz
            self.port_write(port, value)
        bios_video.clear_screen(self)

    def boot(self, vcpu: "VCpuBackend") -> None:
        """POST, then load the boot sector and point the vCPU at it."""
        if self.disk is None:
            raise ImageError(f"VM {self.vm.name}: no disk to boot from")
        self.post()
        sector = self.disk.read(0, SECTOR)
        if len(sector) < SECTOR or sector[510:512] != b"\x55\xaa":
            raise ImageError(f"{self.disk.path}: not bootable (no 0x55AA boot signature in sector 0)")
        self.memory.write(BOOT_ADDRESS, sector)
        self.vm.publish("power.firmware_boot_read", lba=0, count=1, address=BOOT_ADDRESS,
                        image=self.disk.path)
        vcpu.set_real_mode(0, BOOT_ADDRESS)
        # A PC BIOS jumps to the boot sector with interrupts enabled (the timer ticks).
        vcpu.set_regs(edx=BOOT_DRIVE, esp=BOOT_ADDRESS, eax=0xAA55, ebx=0, ecx=0, esi=0, edi=0, ebp=0,
                      eflags=0x202)

    # --- BIOS calls ---------------------------------------------------------------------
    def trap(self, vcpu: "VCpuBackend") -> None:
        regs = vcpu.get_regs()
        vector = self.rom.traps.get(regs["eip"] & 0xFFFF) if regs["cs"] == ROM_SEGMENT else None
        if vector is None:
            return                      # a stray write to port 0xB2: ignored, like an SMI with no handler
        if vector == -1:
            self.request_reset()
            return
        call = BiosCall(vector, vcpu, self.memory)
        svc = lookup(vector, call.ah)
        self.calls += 1
        if self.vm.traced("exit.bios"):
            self.vm.publish("exit.bios", vector=vector, ah=call.ah,
                            service=svc.description if svc else "unsupported")
        if svc is None:
            call.fail(0x86)             # "function not supported", carry set
        else:
            svc.handler(call, self)
        call.commit()
