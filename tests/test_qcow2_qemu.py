"""qcow2 images cross between this code and QEMU in both directions.

Images made here pass `qemu-img check` and read back identically through qemu-img;
images, overlays and snapshots made by QEMU open, read and write correctly here.
"""
from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess

import pytest

from sandbox.storage import open_image
from sandbox.storage.convert import convert_image
from sandbox.storage.create import create_image
from sandbox.storage.qcow2 import Qcow2Image

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
    reason="qemu-img/qemu-io are not installed (apt install qemu-utils)")
MiB = 1 << 20


def qemu(*args: str, ok=(0,)) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode in ok, f"{' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def assert_check_passes(path) -> None:
    out = qemu("qemu-img", "check", "--output=json", str(path))
    report = json.loads(out)
    assert report.get("corruptions", 0) == 0 and report.get("leaks", 0) == 0, report
    assert report["check-errors"] == 0


def qemu_raw(path, tmp_path, snapshot: str | None = None) -> bytes:
    out = tmp_path / "qemu-view.raw"
    qemu("qemu-img", "convert", "-O", "raw", *(["-l", snapshot] if snapshot else []),
         str(path), str(out))
    return out.read_bytes()


def scribble(img, ref: bytearray, count: int, seed: int) -> None:
    rnd = random.Random(seed)
    for _ in range(count):
        offset = rnd.randrange(len(ref))
        data = rnd.randbytes(min(rnd.randrange(1, 70000), len(ref) - offset))
        img.write(offset, data)
        ref[offset:offset + len(data)] = data


@pytest.mark.parametrize("options", [{}, {"version": 2}, {"cluster_size": 512, "refcount_bits": 1},
                                     {"cluster_size": 512, "refcount_bits": 64}],
                         ids=["default", "v2", "512-rc1", "512-rc64"])
def test_images_made_here_pass_qemu_img_check_and_read_the_same(tmp_path, options):
    path = tmp_path / "ours.qcow2"
    create_image(path, size=4 * MiB, **options)
    assert_check_passes(path)
    ref = bytearray(4 * MiB)
    with Qcow2Image(path) as img:
        scribble(img, ref, 60, seed=1)
    assert_check_passes(path)
    assert qemu_raw(path, tmp_path) == ref
    info = json.loads(qemu("qemu-img", "info", "--output=json", str(path)))
    assert info["virtual-size"] == 4 * MiB and info["format"] == "qcow2"


@pytest.mark.parametrize("compat", ["1.1", "0.10"])
def test_images_made_by_qemu_read_and_write_here(tmp_path, compat):
    path = tmp_path / "theirs.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", "-o", f"compat={compat}", str(path), "4M")
    qemu("qemu-io", "-c", "write -P 0x5a 64k 100k", "-c", "write -z 1M 64k", str(path))
    ref = bytearray(4 * MiB)
    ref[65536:65536 + 102400] = b"\x5a" * 102400
    with Qcow2Image(path) as img:
        assert img.read(0, 4 * MiB) == ref
        scribble(img, ref, 40, seed=2)
        assert img.read(0, 4 * MiB) == ref
    assert_check_passes(path)
    assert qemu_raw(path, tmp_path) == ref


@pytest.mark.parametrize("backing_format", ["raw", "qcow2"])
def test_qemu_overlay_works_here_and_the_backing_file_is_untouched(tmp_path, backing_format):
    (tmp_path / "sub").mkdir()
    base = tmp_path / "sub" / f"base.{backing_format}"
    qemu("qemu-img", "create", "-q", "-f", backing_format, str(base), "2M")
    qemu("qemu-io", "-f", backing_format, "-c", "write -P 0x11 0 2M", str(base))
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    overlay = tmp_path / "sub" / "overlay.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", "-b", base.name, "-F", backing_format,
         str(overlay))                                  # relative to the overlay's folder
    ref = bytearray(b"\x11" * 2 * MiB)
    with open_image(str(overlay)) as img:
        assert img.read(0, 2 * MiB) == ref
        scribble(img, ref, 40, seed=3)
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before
    assert_check_passes(overlay)
    assert qemu_raw(overlay, tmp_path) == ref


def test_overlays_made_here_open_in_qemu(tmp_path):
    base = tmp_path / "base.qcow2"
    create_image(base, size=2 * MiB)
    ref = bytearray(2 * MiB)
    with Qcow2Image(base) as img:
        scribble(img, ref, 20, seed=4)
    overlay = tmp_path / "overlay.qcow2"
    create_image(overlay, backing=str(base))
    with Qcow2Image(overlay) as img:
        scribble(img, ref, 20, seed=5)
    assert_check_passes(overlay)
    chain = json.loads(qemu("qemu-img", "info", "--backing-chain", "--output=json", str(overlay)))
    assert [c["format"] for c in chain] == ["qcow2", "qcow2"]
    assert chain[0]["backing-filename"] == "base.qcow2"
    assert qemu_raw(overlay, tmp_path) == ref


def test_snapshots_made_here_are_seen_by_qemu(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=2 * MiB)
    first = bytearray(2 * MiB)
    with Qcow2Image(path) as img:
        scribble(img, first, 20, seed=6)
        img.create_snapshot("first")
        now = bytearray(first)
        scribble(img, now, 20, seed=7)
        img.create_snapshot("second")
        img.create_snapshot("third")
        img.delete_snapshot("third")
    assert_check_passes(path)
    listing = qemu("qemu-img", "snapshot", "-l", str(path))
    assert "first" in listing and "second" in listing and "third" not in listing
    assert qemu_raw(path, tmp_path, snapshot="first") == first
    qemu("qemu-img", "snapshot", "-a", "first", str(path))
    with Qcow2Image(path) as img:
        assert img.read(0, 2 * MiB) == first


def test_snapshots_made_by_qemu_work_here(tmp_path):
    path = tmp_path / "disk.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", str(path), "2M")
    qemu("qemu-io", "-c", "write -P 0x01 0 1M", str(path))
    qemu("qemu-img", "snapshot", "-c", "one", str(path))
    qemu("qemu-io", "-c", "write -P 0x02 512k 1M", str(path))
    with Qcow2Image(path) as img:
        assert [s.name for s in img.snapshots] == ["one"]
        assert img.read(0, 2 * MiB) == b"\x01" * (512 << 10) + b"\x02" * MiB + bytes(512 << 10)
        img.apply_snapshot("one")
        assert img.read(0, 2 * MiB) == b"\x01" * MiB + bytes(MiB)
        img.write(0, b"\x03" * 4096)
        img.delete_snapshot("one")
    assert_check_passes(path)
    assert qemu_raw(path, tmp_path) == b"\x03" * 4096 + b"\x01" * (MiB - 4096) + bytes(MiB)


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_convert_agrees_with_qemu_img_convert(tmp_path, fmt):
    base = tmp_path / "base.img"
    base.write_bytes(bytes(MiB) + random.Random(8).randbytes(MiB) + bytes(MiB))
    overlay = tmp_path / "overlay.qcow2"
    create_image(overlay, backing=str(base))
    with Qcow2Image(overlay) as img:
        img.write(100, b"overlay data")
    ours, theirs = tmp_path / f"ours.{fmt}", tmp_path / f"theirs.{fmt}"
    convert_image(str(overlay), str(ours), fmt)
    qemu("qemu-img", "convert", "-O", fmt, str(overlay), str(theirs))
    qemu("qemu-img", "compare", "-f", fmt, "-F", fmt, str(ours), str(theirs))
    if fmt == "raw":
        assert ours.read_bytes() == theirs.read_bytes()
    else:
        assert_check_passes(ours)
        mine = json.loads(qemu("qemu-img", "info", "--output=json", str(ours)))
        assert "backing-filename" not in mine              # the output stands alone
