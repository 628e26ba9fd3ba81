"""qcow2 as a virtual disk: what the guest reads is what it wrote, whatever the layout.

These tests need no QEMU; tests/test_qcow2_qemu.py checks the same images with qemu-img.
"""
from __future__ import annotations

import hashlib
import os
import random

import pytest

from sandbox.errors import ImageError
from sandbox.storage import open_image
from sandbox.storage.create import create_image, parse_size
from sandbox.storage.qcow2 import Qcow2Image

MiB = 1 << 20


def _random_writes(img, ref: bytearray, count: int, seed: int, max_len: int = 20000) -> None:
    rnd = random.Random(seed)
    for _ in range(count):
        offset = rnd.randrange(len(ref))
        data = rnd.randbytes(min(rnd.randrange(1, max_len), len(ref) - offset))
        img.write(offset, data)
        ref[offset:offset + len(data)] = data


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("options", [
    {},                                                 # QEMU's defaults: v3, 64K, 16-bit
    {"version": 2},
    {"cluster_size": 512, "refcount_bits": 1},          # sub-byte refcounts
    {"cluster_size": 512, "refcount_bits": 64},         # forces the refcount table to grow
    {"cluster_size": 2 * MiB},
], ids=["default", "v2", "512-rc1", "512-rc64", "2M"])
def test_what_the_guest_writes_it_reads_back_after_reopening(tmp_path, options):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=4 * MiB, **options)
    ref = bytearray(4 * MiB)
    with Qcow2Image(path) as img:
        assert img.read(0, 4 * MiB) == ref              # a new disk reads as zeros
        _random_writes(img, ref, 150, seed=1)
        img.flush()
        assert img.read(0, 4 * MiB) == ref
    with Qcow2Image(path) as img:
        assert img.read(0, 4 * MiB) == ref
        assert img.read(4 * MiB - 10, 30) == bytes(ref[-10:]) + bytes(20)  # past the end: zeros


def test_new_image_allocates_nothing_until_written(tmp_path):
    path = tmp_path / "empty.qcow2"
    create_image(path, size=parse_size("1G"))
    assert os.path.getsize(path) == 4 * 65536           # header, refcount table+block, L1
    with Qcow2Image(path) as img:
        assert img.size() == 1 << 30
        assert img.allocated_clusters() == 0
        img.write(5 * MiB + 100, b"hello")
        assert img.allocated_clusters() == 1
        assert img.read(5 * MiB + 98, 9) == b"\0\0hello\0\0"


def test_rewriting_a_cluster_reuses_it(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB)
    with Qcow2Image(path) as img:
        img.write(0, b"a" * 4096)
        size = os.path.getsize(path)
        for i in range(20):
            img.write(0, bytes([i]) * 4096)
        assert os.path.getsize(path) == size
        assert img.read(0, 4096) == bytes([19]) * 4096


def test_overlay_reads_through_to_backing_and_never_writes_it(tmp_path):
    base = tmp_path / "base.img"
    base.write_bytes(random.Random(2).randbytes(2 * MiB))
    before = _sha(base)
    overlay = tmp_path / "overlay.qcow2"
    create_image(overlay, backing=str(base))
    ref = bytearray(base.read_bytes())
    with Qcow2Image(overlay) as img:
        assert img.size() == 2 * MiB                    # size taken from the backing file
        assert img.read(0, 2 * MiB) == ref
        _random_writes(img, ref, 100, seed=3)           # partial clusters copy from the base
        assert img.read(0, 2 * MiB) == ref
    assert _sha(base) == before
    with open_image(str(overlay)) as img:
        assert img.read(0, 2 * MiB) == ref


def test_backing_path_is_relative_to_the_overlay_folder(tmp_path, monkeypatch):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "base.img").write_bytes(b"B" * 4096)
    monkeypatch.chdir(tmp_path)
    create_image("images/over.qcow2", backing="images/base.img")
    with Qcow2Image("images/over.qcow2") as img:
        assert img.header.backing_file == "base.img"    # stored next to the overlay
        assert img.header.backing_format == "raw"
    os.rename(tmp_path / "images", tmp_path / "moved")  # the pair moves together
    with Qcow2Image(tmp_path / "moved" / "over.qcow2") as img:
        assert img.read(0, 4) == b"BBBB"


def test_chain_of_qcow2_overlays(tmp_path):
    base = tmp_path / "base.qcow2"
    create_image(base, size=MiB)
    with Qcow2Image(base) as img:
        img.write(0, b"base" * 1024)
    mid, top = tmp_path / "mid.qcow2", tmp_path / "top.qcow2"
    create_image(mid, backing=str(base))
    with Qcow2Image(mid) as img:
        img.write(4096, b"mid!" * 1024)
    create_image(top, backing=str(mid))
    with Qcow2Image(top) as img:
        img.write(8192, b"top!" * 1024)
        assert img.read(0, 3 * 4096) == b"base" * 1024 + b"mid!" * 1024 + b"top!" * 1024
        assert img.backing.backing.format == "qcow2" and img.backing.readonly


def test_snapshot_keeps_the_old_view_while_the_disk_changes(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=2 * MiB, cluster_size=4096)
    ref = bytearray(2 * MiB)
    with Qcow2Image(path) as img:
        _random_writes(img, ref, 50, seed=4)
        img.create_snapshot("before")
        saved = bytes(ref)
        _random_writes(img, ref, 50, seed=5)            # copy-on-write of shared clusters
        assert img.read(0, 2 * MiB) == ref
        img.create_snapshot("after")
        img.apply_snapshot("before")
        assert img.read(0, 2 * MiB) == saved
        img.write(0, b"new")                            # the reverted disk is writable
        img.apply_snapshot("after")
        assert img.read(0, 2 * MiB) == ref
        img.delete_snapshot("before")
        assert [s.name for s in img.snapshots] == ["after"]
    with Qcow2Image(path) as img:
        assert img.read(0, 2 * MiB) == ref
        assert [(s.id, s.name, s.disk_size) for s in img.snapshots] == [("2", "after", 2 * MiB)]


def test_deleting_every_snapshot_frees_what_only_they_used(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB, cluster_size=4096)
    with Qcow2Image(path) as img:
        img.write(0, b"x" * MiB)
        img.create_snapshot("s")
        img.write(0, b"y" * MiB)                         # every cluster copied once
        used = img.allocated_clusters()
        img.delete_snapshot("s")
        host = img._lookup(0)[1]
        assert img.refcount(host) == 1
        size = os.path.getsize(path)
        img.create_snapshot("t")
        img.write(0, b"z" * MiB)                         # reuses the freed clusters
        assert os.path.getsize(path) <= size + 8 * 4096
        assert img.allocated_clusters() == used


def test_snapshot_errors_are_one_line(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB)
    with Qcow2Image(path) as img:
        img.create_snapshot("a")
        with pytest.raises(ImageError, match="already exists"):
            img.create_snapshot("a")
        with pytest.raises(ImageError, match="no snapshot named 'zz'"):
            img.apply_snapshot("zz")
    with Qcow2Image(path, readonly=True) as img:
        with pytest.raises(ImageError, match="read-only"):
            img.delete_snapshot("a")


def test_one_bit_refcounts_cannot_share_clusters(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB, cluster_size=512, refcount_bits=1)
    with Qcow2Image(path) as img:
        img.write(0, b"data")
        with pytest.raises(ImageError, match="overflow 1 bits"):
            img.create_snapshot("s")


def test_read_only_and_out_of_range_writes_are_refused(tmp_path):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB)
    with Qcow2Image(path, readonly=True) as img:
        with pytest.raises(PermissionError):
            img.write(0, b"x")
    with Qcow2Image(path) as img:
        with pytest.raises(ImageError, match="outside the 1048576-byte disk"):
            img.write(MiB - 1, b"xy")


def test_reading_an_allocated_cluster_is_one_pread(tmp_path, monkeypatch):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=8 * MiB)
    with Qcow2Image(path) as img:
        img.write(0, os.urandom(8 * MiB))
        img.read(0, 512)                                 # warm the L2 cache
        calls = []
        real = os.pread
        monkeypatch.setattr(os, "pread", lambda *a: calls.append(a) or real(*a))
        img.read(3 * MiB + 512, 4096)
        assert len(calls) == 1
        calls.clear()
        img.read(0, 8 * MiB)                             # contiguous clusters: one pread
        assert len(calls) == 1


def test_flush_fsyncs_the_file(tmp_path, monkeypatch):
    path = tmp_path / "disk.qcow2"
    create_image(path, size=MiB)
    with Qcow2Image(path) as img:
        img.write(0, b"x")
        synced = []
        monkeypatch.setattr(os, "fsync", synced.append)
        img.flush()
        assert synced == [img._fd]


@pytest.mark.parametrize("text, size", [("64M", 64 * MiB), ("1G", 1 << 30), ("512K", 512 << 10),
                                        ("4096", 4096), ("1.5G", 3 << 29), ("2MiB", 2 * MiB)])
def test_sizes_are_written_the_qemu_img_way(text, size):
    assert parse_size(text) == size


def test_create_refuses_bad_requests(tmp_path):
    with pytest.raises(ImageError, match="not a size"):
        parse_size("lots")
    with pytest.raises(ImageError, match="give a size"):
        create_image(tmp_path / "a.qcow2")
    with pytest.raises(ImageError, match="cannot have a backing file"):
        create_image(tmp_path / "a.img", "raw", backing=str(tmp_path / "a.qcow2"))
    with pytest.raises(ImageError, match="cluster size"):
        create_image(tmp_path / "a.qcow2", size=MiB, cluster_size=1000)
    with pytest.raises(ImageError, match="unknown image format"):
        create_image(tmp_path / "a.vdi", "vdi", size=MiB)
    create_image(tmp_path / "a.qcow2", size=MiB)
    with pytest.raises(ImageError, match="already exists"):
        create_image(tmp_path / "a.qcow2", size=MiB)
    assert os.listdir(tmp_path) == ["a.qcow2"]           # no temporary files left behind
