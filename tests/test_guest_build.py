"""The guest images in guests/images are what the sources build, byte for byte, and
their disk layouts are what the loader and tinyos expect."""
from __future__ import annotations

import argparse
import shutil
import struct

import pytest

from sandbox import guestbuild
from sandbox.errors import ImageError, SandboxError

IMAGES = guestbuild.IMAGES_DIR
def committed_images() -> list[str]:
    """Every image in guests/images must be built from guests/src (and nothing else)."""
    return sorted(p.name for p in IMAGES.iterdir() if p.suffix in (".img", ".elf"))

needs_toolchain = pytest.mark.skipif(not guestbuild.toolchain_available(),
                                     reason="gcc -m32 / as / ld / objcopy not installed")


@needs_toolchain
def test_rebuild_reproduces_the_committed_images_byte_for_byte(tmp_path):
    versions = guestbuild.toolchain_versions()
    if versions != guestbuild.REFERENCE_TOOLCHAIN:
        pytest.skip(f"images were built with {guestbuild.REFERENCE_TOOLCHAIN}, this is {versions}")
    built = guestbuild.build_all(tmp_path)
    assert sorted(p.name for p in built) == committed_images()
    for path in built:
        assert path.read_bytes() == (IMAGES / path.name).read_bytes(), \
            f"{path.name} differs from guests/images: rebuild with `sandbox guests build`"


@needs_toolchain
def test_cli_builds_only_the_named_guests(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    guestbuild.add_arguments(parser)
    assert guestbuild.main(parser.parse_args(["--out", str(tmp_path), "hello"])) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["hello.img"]
    assert "hello.img  512 bytes" in capsys.readouterr().out


def test_unknown_guest_is_a_one_line_user_error(tmp_path):
    with pytest.raises(SandboxError, match="unknown guest 'nope'"):
        guestbuild.build_all(tmp_path, ["nope"])


@pytest.mark.parametrize("name", ["hello.img", "crash.img"])
def test_boot_sectors_are_one_signed_sector(name):
    data = (IMAGES / name).read_bytes()
    assert len(data) == 512 and data[510:] == b"\x55\xaa"


@pytest.mark.parametrize("name", ["cpuhog", "tinyos"])
def test_kernels_are_32bit_multiboot_elfs_and_sit_on_their_disks(name):
    elf = (IMAGES / f"{name}.elf").read_bytes()
    assert elf[:5] == b"\x7fELF\x01"                           # 32-bit: qemu -kernel refuses 64
    assert struct.unpack_from("<H", elf, 18)[0] == 3            # EM_386
    guestbuild.check_multiboot_header(elf, name)                # magic in the first 8 KiB
    entry, base = guestbuild.elf_entry_and_base(elf)
    disk = (IMAGES / f"{name}.img").read_bytes()
    assert len(disk) % guestbuild.DISK_ALIGN == 0 and disk[510:512] == b"\x55\xaa"
    lba, count, cmdline_lba, load, start = guestbuild.LOADER_PARAMS.unpack_from(
        disk, guestbuild.LOADER_PARAMS_OFFSET)
    assert (load, start) == (base, entry) == (0x100000, entry)
    # The first loadable segment of the ELF is the start of the kernel on the disk.
    phoff = struct.unpack_from("<I", elf, 28)[0]
    _type, offset, _v, _p, filesz = struct.unpack_from("<IIIII", elf, phoff)
    kernel = disk[lba * 512:(lba + count) * 512]
    assert kernel[:filesz] == elf[offset:offset + filesz]
    assert cmdline_lba == (1 if name == "cpuhog" else 0)


def test_tinyos_disk_has_a_tinyfs_directory_at_lba_1():
    disk = (IMAGES / "tinyos.img").read_bytes()
    directory = disk[512:1024]
    assert directory[:8] == b"TINYFS01"
    count = struct.unpack_from("<I", directory, 8)[0]
    files = {}
    for i in range(count):
        raw_name, lba, size = struct.unpack_from("<24sII", directory, 16 + 32 * i)
        name = raw_name.rstrip(b"\0").decode()
        files[name] = disk[lba * 512:lba * 512 + size]
    source = guestbuild.SRC_DIR / "tinyos" / "files"
    assert files == {p.name: p.read_bytes() for p in source.iterdir()}


def test_write_command_line_rewrites_cpuhogs_parameter_sector(tmp_path):
    disk = tmp_path / "cpuhog.img"
    shutil.copyfile(IMAGES / "cpuhog.img", disk)
    assert disk.read_bytes()[512:512 + 30] == b"burn=100000 sleep=0 reports=20"
    guestbuild.write_command_line(disk, "burn=5 sleep=0 reports=1")
    sector = disk.read_bytes()[512:1024]
    assert sector == b"burn=5 sleep=0 reports=1".ljust(512, b"\0")


def test_write_command_line_refuses_a_disk_without_that_sector(tmp_path):
    disk = tmp_path / "tinyos.img"
    shutil.copyfile(IMAGES / "tinyos.img", disk)
    with pytest.raises(ImageError, match="no command-line sector"):
        guestbuild.write_command_line(disk, "x=1")
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1024))
    with pytest.raises(ImageError, match="not a bootable disk"):
        guestbuild.write_command_line(blank, "x=1")
