"""`sandbox disk create|info|snapshot|convert`: the qemu-img verbs, on the same formats."""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess

import pytest

from sandbox.cli import disk_cmd
from sandbox.storage.qcow2 import Qcow2Image

MiB = 1 << 20


def disk(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="sandbox disk")
    disk_cmd.add_arguments(parser)
    return disk_cmd.run(parser.parse_args(argv))


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "guests" / "images").mkdir(parents=True)
    (tmp_path / "guests" / "images" / "tinyos.img").write_bytes(b"\xeb\xfe" * (MiB // 2))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_create_an_overlay_on_the_tinyos_image(workdir, capsys):
    assert disk("create", "tinyos-overlay.qcow2", "--backing", "guests/images/tinyos.img") == 0
    assert "backing guests/images/tinyos.img (raw)" in capsys.readouterr().out
    with Qcow2Image("tinyos-overlay.qcow2") as img:
        assert img.size() == MiB and img.read(0, 4) == b"\xeb\xfe\xeb\xfe"
    if shutil.which("qemu-img"):
        subprocess.run(["qemu-img", "check", "tinyos-overlay.qcow2"], check=True,
                       capture_output=True)


def test_info_shows_what_qemu_img_info_shows(workdir, capsys):
    disk("create", "over.qcow2", "--backing", "guests/images/tinyos.img")
    with Qcow2Image("over.qcow2") as img:
        img.write(0, b"x" * 70000)                      # two 64 KiB clusters
    disk("snapshot", "over.qcow2", "create", "clean")
    capsys.readouterr()
    assert disk("info", "over.qcow2") == 0
    text = capsys.readouterr().out
    for line in ("file format: qcow2", "virtual size: 1 MiB (1048576 bytes)",
                 "cluster size: 65536", "backing file: guests/images/tinyos.img",
                 "allocated: 2 clusters (128 KiB)", "snapshots:"):
        assert line in text
    assert "clean" in text and "tinyos.img (raw)" in text
    assert disk("info", "--json", "over.qcow2") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "qcow2" and info["virtual_size"] == MiB
    assert info["cluster_size"] == 65536 and info["allocated_clusters"] == 2
    assert [b["format"] for b in info["backing_chain"]] == ["raw"]
    assert [s["name"] for s in info["snapshots"]] == ["clean"]


def test_info_and_snapshots_still_work_when_the_backing_file_is_gone(workdir, capsys):
    (workdir / "base.img").write_bytes(bytes(65536))
    disk("create", "over.qcow2", "--backing", "base.img")
    (workdir / "base.img").unlink()
    assert disk("info", "over.qcow2") == 0
    assert "backing problem: over.qcow2: backing file base.img not found" in capsys.readouterr().out
    assert disk("snapshot", "over.qcow2", "create", "s") == 0   # metadata only


@pytest.mark.parametrize("fmt, expected", [("qcow2", "qcow2"), ("raw", "raw")])
def test_create_by_size(workdir, capsys, fmt, expected):
    assert disk("create", f"scratch.{fmt}", "--size", "64M", "--format", fmt) == 0
    disk("info", "--json", f"scratch.{fmt}")
    info = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert info["format"] == expected and info["virtual_size"] == 64 * MiB


def test_snapshot_verbs(workdir, capsys):
    disk("create", "d.qcow2", "--size", "1M")
    with Qcow2Image("d.qcow2") as img:
        img.write(0, b"version one")
    assert disk("snapshot", "d.qcow2", "create", "v1") == 0
    with Qcow2Image("d.qcow2") as img:
        img.write(0, b"version two")
    assert disk("snapshot", "d.qcow2", "list") == 0
    assert "v1" in capsys.readouterr().out
    assert disk("snapshot", "d.qcow2", "apply", "v1") == 0
    with Qcow2Image("d.qcow2") as img:
        assert img.read(0, 11) == b"version one"
    assert disk("snapshot", "d.qcow2", "delete", "1") == 0   # by ID works too
    capsys.readouterr()
    disk("snapshot", "d.qcow2", "list")
    assert "v1" not in capsys.readouterr().out


def test_convert_flattens_an_overlay(workdir):
    disk("create", "over.qcow2", "--backing", "guests/images/tinyos.img")
    with Qcow2Image("over.qcow2") as img:
        img.write(MiB - 5, b"tail!")
    assert disk("convert", "over.qcow2", "flat.img", "--format", "raw") == 0
    expected = (workdir / "guests/images/tinyos.img").read_bytes()[:-5] + b"tail!"
    assert (workdir / "flat.img").read_bytes() == expected
    assert disk("convert", "flat.img", "again.qcow2") == 0          # format from the suffix
    with Qcow2Image("again.qcow2") as img:
        assert img.header.backing_file is None and img.read(0, MiB) == expected


@pytest.mark.parametrize("argv, words", [
    (("info", "missing.qcow2"), "missing.qcow2: disk image not found"),
    (("create", "guests/images/tinyos.img", "--size", "1M"), "already exists"),
    (("create", "x.qcow2"), "give a size"),
    (("create", "x.qcow2", "--size", "huge"), "'huge' is not a size"),
    (("create", "x.img", "--format", "raw", "--backing", "guests/images/tinyos.img"),
     "cannot have a backing file"),
    (("snapshot", "guests/images/tinyos.img", "list"), "raw images have no snapshots"),
    (("snapshot", "d.qcow2", "create"), "needs a NAME"),
    (("snapshot", "d.qcow2", "apply", "nope"), "no snapshot named 'nope'"),
    (("convert", "d.qcow2", "d.qcow2"), "is the source image"),
])
def test_mistakes_exit_2_with_one_line(workdir, capsys, argv, words):
    disk("create", "d.qcow2", "--size", "1M")
    capsys.readouterr()
    assert disk(*argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1 and err.startswith("sandbox disk: ")
