"""Boot a Multiboot v1 kernel directly, as ``qemu-system-i386 -kernel`` does.

The loader finds the Multiboot header in the first 8 KiB of the file, loads the ELF
program headers (or, with the a.out kludge, the addresses the header gives), writes
a Multiboot information structure (memory sizes, memory map, command line, boot
loader name) and enters the kernel in 32-bit protected mode with EAX = 0x2BADB002
and EBX = the information's address, paging off and interrupts disabled.
Spec: https://www.gnu.org/software/grub/manual/multiboot/multiboot.html
"""
from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from sandbox.backends.base import FlatProtectedMode
from sandbox.errors import ImageError
from sandbox.firmware.bios_system import e820_map
from sandbox.vm.descriptors import encode_segment

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.vm.memory import GuestMemory

HEADER_MAGIC = 0x1BADB002
BOOTLOADER_MAGIC = 0x2BADB002
SEARCH_BYTES = 8192
FLAG_PAGE_ALIGN, FLAG_MEMORY_INFO, FLAG_VIDEO, FLAG_AOUT_KLUDGE = 1 << 0, 1 << 1, 1 << 2, 1 << 16
SUPPORTED_REQUIRED = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO   # low 16 bits we can honour

# Where the loader puts its own structures (below the EBDA, above the BDA).
GDT_ADDR = 0x0800
INFO_ADDR = 0x9000
MMAP_ADDR = 0x9100
CMDLINE_ADDR = 0x9400
NAME_ADDR = 0x9800
LOADER_NAME = b"virtualization-sandbox\x00"

# Info flags (Multiboot spec 3.3).
INFO_MEMORY, INFO_BOOTDEV, INFO_CMDLINE, INFO_MMAP, INFO_LOADER = 1 << 0, 1 << 1, 1 << 2, 1 << 6, 1 << 9


@dataclass
class MultibootHeader:
    offset: int
    flags: int
    header_addr: int = 0
    load_addr: int = 0
    load_end_addr: int = 0
    bss_end_addr: int = 0
    entry_addr: int = 0


def find_header(data: bytes, path: str) -> MultibootHeader:
    for off in range(0, min(len(data), SEARCH_BYTES) - 11, 4):
        magic, flags, checksum = struct.unpack_from("<III", data, off)
        if magic == HEADER_MAGIC and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            hdr = MultibootHeader(off, flags)
            if flags & FLAG_AOUT_KLUDGE:
                if off + 32 > len(data):
                    raise ImageError(f"{path}: Multiboot header is truncated")
                (hdr.header_addr, hdr.load_addr, hdr.load_end_addr, hdr.bss_end_addr,
                 hdr.entry_addr) = struct.unpack_from("<5I", data, off + 12)
            unsupported = flags & 0xFFFF & ~SUPPORTED_REQUIRED
            if unsupported & FLAG_VIDEO:
                pass  # a video mode request: we stay in text mode, which the spec allows
            elif unsupported:
                raise ImageError(f"{path}: Multiboot header requires unsupported features (flags {flags:#x})")
            return hdr
    raise ImageError(f"{path}: not a Multiboot kernel (no Multiboot header in the first 8 KiB)")


def load_kernel(path: str, memory: "GuestMemory", cmdline: str = "") -> int:
    """Load the kernel image into guest memory; return the entry point."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError(f"{path}: kernel not found") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read kernel ({e.strerror})") from None
    hdr = find_header(data, path)
    if hdr.flags & FLAG_AOUT_KLUDGE:
        return _load_aout_kludge(path, data, hdr, memory)
    if data[:4] != b"\x7fELF":
        raise ImageError(f"{path}: Multiboot header without load addresses and not an ELF file")
    return _load_elf(path, data, memory)


def _check_range(path: str, memory: "GuestMemory", start: int, end: int) -> None:
    if start < 0x100000 and end > 0xA0000 or end > memory.size:
        raise ImageError(f"{path}: kernel wants memory {start:#x}-{end:#x}, outside this VM's "
                         f"{memory.size >> 20} MiB of RAM (give the VM more memory)")


def _load_elf(path: str, data: bytes, memory: "GuestMemory") -> int:
    try:
        elf = ELFFile(io.BytesIO(data))
        if elf.elfclass != 32 or elf["e_machine"] != "EM_386":
            raise ImageError(f"{path}: Multiboot v1 needs a 32-bit x86 ELF (this is {elf.elfclass}-bit {elf['e_machine']})")
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                continue
            addr, filesz, memsz = seg["p_paddr"], seg["p_filesz"], seg["p_memsz"]
            _check_range(path, memory, addr, addr + memsz)
            memory.write(addr, seg.data()[:filesz] + bytes(memsz - filesz))
        return elf["e_entry"]
    except ELFError as e:
        raise ImageError(f"{path}: corrupt ELF file ({e})") from None


def _load_aout_kludge(path: str, data: bytes, hdr: MultibootHeader, memory: "GuestMemory") -> int:
    file_start = hdr.offset - (hdr.header_addr - hdr.load_addr)
    end = hdr.load_end_addr or hdr.load_addr + (len(data) - file_start)
    bss_end = max(hdr.bss_end_addr, end)
    if file_start < 0 or hdr.header_addr < hdr.load_addr:
        raise ImageError(f"{path}: Multiboot load addresses are inconsistent")
    _check_range(path, memory, hdr.load_addr, bss_end)
    memory.write(hdr.load_addr, data[file_start:file_start + (end - hdr.load_addr)])
    memory.write(end, bytes(bss_end - end))
    return hdr.entry_addr


def write_info(memory: "GuestMemory", cmdline: str, boot_drive: int | None) -> int:
    """Write the Multiboot information structure; return its address (for EBX)."""
    mmap = b"".join(struct.pack("<IQQI", 20, base, length, kind)
                    for base, length, kind in e820_map(memory.size) if length)
    memory.write(MMAP_ADDR, mmap)
    memory.write(CMDLINE_ADDR, cmdline.encode()[:0x3FF] + b"\x00")
    memory.write(NAME_ADDR, LOADER_NAME)
    flags = INFO_MEMORY | INFO_CMDLINE | INFO_MMAP | INFO_LOADER
    boot_device = 0xFFFFFFFF
    if boot_drive is not None:
        flags |= INFO_BOOTDEV
        boot_device = (boot_drive << 24) | 0x00FFFFFF
    info = bytearray(88)
    struct.pack_into("<IIII", info, 0, flags, 639, (memory.size - 0x100000) >> 10, boot_device)
    struct.pack_into("<I", info, 16, CMDLINE_ADDR)
    struct.pack_into("<II", info, 44, len(mmap), MMAP_ADDR)
    struct.pack_into("<I", info, 64, NAME_ADDR)
    memory.write(INFO_ADDR, info)
    return INFO_ADDR


def write_flat_gdt(memory: "GuestMemory") -> FlatProtectedMode:
    gdt = bytes(8) + encode_segment(0, 0xFFFFF, 0x9A, 0xC) + encode_segment(0, 0xFFFFF, 0x92, 0xC)
    memory.write(GDT_ADDR, gdt)
    return FlatProtectedMode(GDT_ADDR, len(gdt) - 1, code=0x08, data=0x10)


def boot_multiboot(vcpu: "VCpuBackend", memory: "GuestMemory", path: str, cmdline: str = "",
                   boot_drive: int | None = None) -> int:
    """Load and enter the kernel. Returns the entry point."""
    entry = load_kernel(path, memory, cmdline)
    info = write_info(memory, cmdline or path, boot_drive)
    pm = write_flat_gdt(memory)
    vcpu.set_regs(esp=0x7C00)
    vcpu.enter_flat_protected_mode(pm, entry)
    vcpu.set_regs(eax=BOOTLOADER_MAGIC, ebx=info, ecx=0, edx=0, esi=0, edi=0, ebp=0, esp=0x7C00)
    return entry
