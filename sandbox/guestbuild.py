"""Build the guest operating systems in guests/ from source, byte for byte reproducibly.

Two kinds of guest, each a row in ``GUESTS``:

* boot sectors (hello, crash): one assembly file linked at 0x7C00 into 512 bytes;
* Multiboot kernels (cpuhog, tinyos): C and assembly linked at 1 MiB into an ELF
  that ``qemu-system-i386 -kernel`` can run, and also packed onto a bootable disk
  behind guests/src/loader (a one-sector loader that speaks Multiboot too).

Reproducible means: the same sources give the same bytes on any machine with the
same toolchain. So the compiler runs inside guests/src with relative file names,
``-ffile-prefix-map`` hides absolute paths, there is no build id, no .comment,
no timestamp and a fixed link order.
"""
from __future__ import annotations

import argparse
import functools
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandbox.errors import ImageError, SandboxError

GUESTS_DIR = Path(__file__).resolve().parent.parent / "guests"
SRC_DIR = GUESTS_DIR / "src"
IMAGES_DIR = GUESTS_DIR / "images"

SECTOR = 512
TOOLS = ("gcc", "as", "ld", "objcopy")

CFLAGS = [
    "-m32", "-march=i686", "-std=gnu11", "-O2", "-Wall", "-Wextra",
    "-ffreestanding", "-fno-pic", "-fno-pie", "-nostdlib", "-fno-builtin",
    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables",
    "-fno-stack-protector", "-fcf-protection=none", "-fno-ident",
    "-fno-tree-loop-distribute-patterns",   # no memset() calls inside memset()
    "-mgeneral-regs-only",                  # integer registers only: no x87/MMX/SSE
    f"-ffile-prefix-map={SRC_DIR}=guests/src",
    "-Ilib",
]
LDFLAGS = ["-m", "elf_i386", "--build-id=none", "-nostdlib", "-static", "-z", "noexecstack"]

# The loader's parameter block (guests/src/loader/loader.S, offset 0x1F0):
# kernel LBA, kernel sectors, command-line LBA (u16 each), load address, entry (u32).
LOADER_PARAMS = struct.Struct("<HHHII")
LOADER_PARAMS_OFFSET = 0x1F0

# TinyFS (guests/src/tinyos/fs.c): one directory sector, then file data.
TINYFS_MAGIC = b"TINYFS01"
TINYFS_NAME = 24
TINYFS_MAX_FILES = (SECTOR - 16) // (TINYFS_NAME + 8)

DISK_ALIGN = 64 * 1024      # disks are padded to a multiple of 64 KiB
LOADER_BUFFER_SECTORS = (0xA0000 - 0x10000) // SECTOR   # the loader reads to 0x10000-0x9FFFF


# The toolchain that built the committed images. Another compiler version produces
# working but different bytes, so the byte-for-byte check only applies to this one.
REFERENCE_TOOLCHAIN = {"gcc": "12.2.0", "ld": "2.40"}


class GuestBuildError(SandboxError):
    """A guest failed to build (missing toolchain or a compiler/linker error)."""


@functools.lru_cache(maxsize=1)
def toolchain_available() -> bool:
    """True if gcc (able to target 32-bit x86), as, ld and objcopy are installed."""
    if not all(shutil.which(tool) for tool in TOOLS):
        return False
    probe = subprocess.run(
        ["gcc", "-m32", "-ffreestanding", "-x", "c", "-c", "-o", "/dev/null", "-"],
        input=b"int x;\n", capture_output=True,
    )
    return probe.returncode == 0


def toolchain_versions() -> dict[str, str]:
    """The installed gcc and GNU ld versions, e.g. {"gcc": "12.2.0", "ld": "2.40"}."""
    gcc = subprocess.run(["gcc", "-dumpfullversion"], capture_output=True, text=True)
    ld = subprocess.run(["ld", "--version"], capture_output=True, text=True)
    first = ld.stdout.splitlines()[0] if ld.stdout else ""
    return {"gcc": gcc.stdout.strip(), "ld": first.split()[-1] if first else ""}


class Toolchain:
    """Runs gcc/ld/objcopy inside guests/src, intermediate files in a scratch dir."""

    def __init__(self, scratch: Path):
        self.scratch = scratch

    def run(self, *cmd: str) -> None:
        done = subprocess.run(cmd, cwd=SRC_DIR, capture_output=True, text=True,
                              env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"})
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise GuestBuildError(f"{cmd[0]} failed: {lines[0]}")

    def compile(self, source: str) -> Path:
        """Compile guests/src/<source> (.c or .S) to an object file."""
        obj = self.scratch / (source.replace("/", "__") + ".o")
        self.run("gcc", *CFLAGS, "-c", source, "-o", str(obj))
        return obj

    def link(self, script: str, objects: list[Path], out: Path) -> Path:
        self.run("ld", *LDFLAGS, "-T", script, "-o", str(out), *map(str, objects))
        return out

    def flat_binary(self, elf: Path) -> bytes:
        out = self.scratch / (elf.name + ".bin")
        self.run("objcopy", "-O", "binary", str(elf), str(out))
        return out.read_bytes()


# ---- ELF and disk helpers ----------------------------------------------------

def elf_entry_and_base(elf: bytes) -> tuple[int, int]:
    """The entry point and the lowest PT_LOAD physical address of a 32-bit ELF."""
    if elf[:5] != b"\x7fELF\x01":
        raise ImageError("not a 32-bit ELF file")
    entry, phoff = struct.unpack_from("<II", elf, 24)
    phentsize, phnum = struct.unpack_from("<HH", elf, 42)
    loads = [struct.unpack_from("<IIII", elf, phoff + i * phentsize)
             for i in range(phnum)]
    return entry, min(paddr for kind, _off, _vaddr, paddr in loads if kind == 1)


def check_multiboot_header(elf: bytes, name: str) -> None:
    """QEMU and GRUB look for the Multiboot magic, 4-byte aligned, in the first 8 KiB."""
    for offset in range(0, min(len(elf), 8192) - 12, 4):
        magic, flags, checksum = struct.unpack_from("<III", elf, offset)
        if magic == 0x1BADB002 and (magic + flags + checksum) & 0xFFFFFFFF == 0:
            return
    raise GuestBuildError(f"{name}: no Multiboot header in the first 8 KiB")


def sectors(data: bytes) -> bytes:
    """Pad to a whole number of sectors."""
    return data + bytes(-len(data) % SECTOR)


def tinyfs(files: list[tuple[str, bytes]], first_lba: int) -> tuple[bytes, bytes]:
    """TinyFS: a directory sector ("TINYFS01", u32 count, u32 0, then entries of
    name[24] / u32 lba / u32 size) and the file data, each file sector-aligned
    from ``first_lba`` on. Returns (directory sector, data)."""
    if len(files) > TINYFS_MAX_FILES:
        raise GuestBuildError(f"TinyFS holds at most {TINYFS_MAX_FILES} files")
    directory = bytearray(TINYFS_MAGIC + struct.pack("<II", len(files), 0))
    data = bytearray()
    for name, content in files:
        raw = name.encode("ascii")
        if len(raw) >= TINYFS_NAME:
            raise GuestBuildError(f"TinyFS file name too long: {name}")
        lba = first_lba + len(data) // SECTOR
        directory += raw.ljust(TINYFS_NAME, b"\0") + struct.pack("<II", lba, len(content))
        data += sectors(content)
    return sectors(bytes(directory)), bytes(data)


def kernel_disk(loader: bytes, kernel: bytes, entry: int, base: int,
                cmdline: str | None = None,
                files: list[tuple[str, bytes]] | None = None) -> bytes:
    """LBA 0 loader, LBA 1 the command line or the TinyFS directory,
    then the kernel, then the file data; padded to DISK_ALIGN."""
    lba = 1
    cmdline_lba = 0
    head = b""
    if cmdline is not None:
        head, cmdline_lba, lba = sectors(cmdline.encode("ascii")), lba, lba + 1
    if files is not None:
        lba += 1                                    # the directory sector
    kernel = sectors(kernel)
    kernel_lba, kernel_count = lba, len(kernel) // SECTOR
    if kernel_lba + kernel_count > 0xFFFF:
        raise GuestBuildError("the loader reaches only the first 32 MiB of a disk")
    if kernel_count > LOADER_BUFFER_SECTORS:
        raise GuestBuildError(f"kernel of {kernel_count} sectors does not fit the loader's "
                              f"buffer below 640 KiB ({LOADER_BUFFER_SECTORS} sectors)")
    if files is not None:
        directory, data = tinyfs(files, kernel_lba + kernel_count)
        head += directory
    else:
        data = b""
    boot = bytearray(loader)
    LOADER_PARAMS.pack_into(boot, LOADER_PARAMS_OFFSET,
                            kernel_lba, kernel_count, cmdline_lba, base, entry)
    disk = bytes(boot) + head + kernel + data
    return disk + bytes(-len(disk) % DISK_ALIGN)


def write_command_line(image: Path, text: str) -> None:
    """Rewrite the command-line sector of a loader-booted disk (e.g. cpuhog's
    "burn=100000 sleep=0 reports=20")."""
    raw = text.encode("ascii")
    if len(raw) >= SECTOR:
        raise ImageError(f"command line longer than {SECTOR - 1} bytes")
    with open(image, "r+b") as disk:
        boot = disk.read(SECTOR)
        if len(boot) < SECTOR or boot[510:512] != b"\x55\xaa":
            raise ImageError(f"{image}: not a bootable disk image")
        cmdline_lba = LOADER_PARAMS.unpack_from(boot, LOADER_PARAMS_OFFSET)[2]
        if cmdline_lba == 0:
            raise ImageError(f"{image}: this disk has no command-line sector")
        disk.seek(cmdline_lba * SECTOR)
        disk.write(raw.ljust(SECTOR, b"\0"))


# ---- the recipes --------------------------------------------------------------

def build_boot_sector(tc: Toolchain, name: str, out_dir: Path) -> list[Path]:
    obj = tc.compile(f"{name}/{name}.S")
    image = tc.link("lib/bootsector.ld", [obj], tc.scratch / f"{name}.bin").read_bytes()
    if len(image) != SECTOR or image[510:] != b"\x55\xaa":
        raise GuestBuildError(f"{name}: boot sector is {len(image)} bytes or lacks 0x55AA")
    out = out_dir / f"{name}.img"
    out.write_bytes(image)
    return [out]


LIB_SOURCES = ["lib/multiboot_entry.S", "lib/console.c", "lib/serial.c", "lib/pc.c",
               "lib/string.c"]


def build_kernel(tc: Toolchain, name: str, out_dir: Path, sources: list[str],
                 cmdline: str | None = None, files_dir: str | None = None) -> list[Path]:
    objects = [tc.compile(src) for src in LIB_SOURCES + sources]
    elf_path = tc.link("lib/kernel.ld", objects, out_dir / f"{name}.elf")
    elf = elf_path.read_bytes()
    check_multiboot_header(elf, name)
    entry, base = elf_entry_and_base(elf)
    loader = tc.link("lib/bootsector.ld", [tc.compile("loader/loader.S")],
                     tc.scratch / "loader.bin").read_bytes()
    files = None
    if files_dir is not None:
        folder = SRC_DIR / files_dir
        files = [(p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file()]
    disk = kernel_disk(loader, tc.flat_binary(elf_path), entry, base, cmdline, files)
    img = out_dir / f"{name}.img"
    img.write_bytes(disk)
    return [img, elf_path]


TINYOS_SOURCES = ["tinyos/isr.S", "tinyos/cpu.c", "tinyos/task.c", "tinyos/syscall.c",
                  "tinyos/tty.c", "tinyos/ata.c", "tinyos/virtio_blk.c", "tinyos/disk.c", "tinyos/fs.c", "tinyos/memory.c", "tinyos/shell.c",
                  "tinyos/user.c", "tinyos/balloon.c", "balloon/driver.c", "tinyos/kernel.c",
                  "tinyos/virtio_net.c", "tinyos/net.c", "tinyos/netcmd.c"]
MEMGUEST_SOURCES = ["lib/flat_gdt.S", "lib/timer_isr.S", "lib/idt.c", "twins/memguest.c"]     # the memory guests' runtime


# diskbench works on the disk after its kernel: sectors 128 on (64 KiB), 256 KiB by default.
DISKBENCH_REGION_START = 64 * 1024
DISKBENCH_REGION = 256 * 1024
DISKBENCH_SOURCES = ["lib/flat_gdt.S", "lib/timer_isr.S", "lib/idt.c", "diskbench/isr.S", "diskbench/machine.c", "diskbench/atapio.c", "tinyos/virtio_blk.c",
                     "diskbench/diskbench.c"]


def build_diskbench(tc: Toolchain, out_dir: Path) -> list[Path]:
    built = build_kernel(tc, "diskbench", out_dir, DISKBENCH_SOURCES,
                         cmdline="kib=256 block=4 ops=64 qd=1 seed=1 mode=verify\n")
    img = built[0]
    data = img.read_bytes()
    if len(data) > DISKBENCH_REGION_START:
        raise GuestBuildError("diskbench: the kernel outgrew the 64 KiB before its test region")
    img.write_bytes(data + bytes(DISKBENCH_REGION_START + DISKBENCH_REGION - len(data)))
    return built


@dataclass(frozen=True)
class Guest:
    description: str
    build: Callable[[Toolchain, Path], list[Path]]


GUESTS: dict[str, Guest] = {
    "hello": Guest("one boot sector: BIOS print, protected mode, COM1 and VGA greeting, ACPI off",
                   lambda tc, out: build_boot_sector(tc, "hello", out)),
    "crash": Guest("one boot sector that prints a line and triple-faults",
                   lambda tc, out: build_boot_sector(tc, "crash", out)),
    "cpuhog": Guest("integer workload with burn/sleep/reports parameters (disk and Multiboot ELF)",
                    lambda tc, out: build_kernel(
                        tc, "cpuhog", out, ["lib/flat_gdt.S", "lib/timer_isr.S", "lib/idt.c", "cpuhog/cpuhog.c"],
                        cmdline="burn=100000 sleep=0 reports=20\n")),
    "tinyos": Guest("tiny preemptive OS: tasks, ring 3, syscalls, shell, ATA and TinyFS",
                    lambda tc, out: build_kernel(
                        tc, "tinyos", out, TINYOS_SOURCES, files_dir="tinyos/files")),
    "twins": Guest("fills memory with a pattern identical in every copy, then checks it (page sharing)",
                   lambda tc, out: build_kernel(
                       tc, "twins", out, MEMGUEST_SOURCES + ["twins/twins.c"],
                       cmdline="kib=1024 rate=0 checks=3 interval=10\n")),
    "memhog": Guest("touches memory at a set rate and checks it on every pass (swapping, limits)",
                    lambda tc, out: build_kernel(
                        tc, "memhog", out, MEMGUEST_SOURCES + ["memhog/memhog.c"],
                        cmdline="kib=1024 rate=0 passes=3 seed=1\n")),
    "balloon": Guest("balloon driver demo: lends free pages to the hypervisor and takes them back",
                     lambda tc, out: build_kernel(
                         tc, "balloon", out, MEMGUEST_SOURCES + ["balloon/driver.c", "balloon/balloon.c"],
                         cmdline="kib=1024 cache=0 ticks=300 work=10\n")),
    "router": Guest("router on a stick: one NIC on an 802.1Q trunk, forwards IPv4 between VLANs",
                    lambda tc, out: build_kernel(
                        tc, "router", out, ["lib/flat_gdt.S", "lib/idt.c", "router/router_isr.S", "router/router.c",
                                            "tinyos/virtio_net.c", "tinyos/net.c"],
                        cmdline="vlan10=10.0.10.1/24 vlan20=10.0.20.1/24\n")),
    "diskbench": Guest("sequential and random disk I/O with a verified pattern, timed in guest time "
                       "(ATA or virtio-blk)", build_diskbench),
}

def build_all(out_dir: Path, names: list[str] | None = None) -> list[Path]:
    """Build the named guests (default: all) into out_dir; returns the files written."""
    names = list(names or GUESTS)
    unknown = [n for n in names if n not in GUESTS]
    if unknown:
        raise GuestBuildError(f"unknown guest {unknown[0]!r} (known: {', '.join(GUESTS)})")
    if not toolchain_available():
        raise GuestBuildError("guest toolchain missing: need gcc (with -m32), as, ld, objcopy")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="guestbuild-") as scratch:
        for name in names:
            work = Path(scratch) / name
            work.mkdir()
            written += GUESTS[name].build(Toolchain(work), out_dir)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=IMAGES_DIR, metavar="DIR",
                        help=f"output directory (default: {IMAGES_DIR})")
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="guests to build (default: all): " + "; ".join(
                            f"{name} = {guest.description}" for name, guest in GUESTS.items()))


def main(args: argparse.Namespace) -> int:
    for path in build_all(args.out, args.names):
        print(f"{path}  {path.stat().st_size} bytes")
    return 0
