"""Storage virtualization end to end, with real guests: tinyos over virtio-blk, diskbench
over both buses, two VMs sharing one hard disk, limits, overlays and durability.

Tolerances (stated once): shares hold to within 20% of their ratio; a limit holds to
within 20% of its rate over half a second of guest time (the bucket's 50 ms burst
included). Runs are deterministic, so these figures are the same on every machine.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import struct
import subprocess

import pytest

from sandbox.api import Machine
from sandbox.config.load import load_machine
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.errors import ConfigError
from sandbox.guestbuild import DISKBENCH_REGION_START, IMAGES_DIR, write_command_line
from sandbox.storage import open_image
from sandbox.storage.create import create_image

SECOND = 1_000_000_000
QEMU_IMG = shutil.which("qemu-img")


def diskbench(tmp_path, name: str, cmdline: str, **vm) -> VmConfig:
    disk = tmp_path / f"{name}.img"
    shutil.copy(IMAGES_DIR / "diskbench.img", disk)
    write_command_line(disk, cmdline)
    return VmConfig(name=name, disk=disk, **vm)


def run(vms: list[VmConfig], disks: list[dict] | None = None, until_ns: int | None = None):
    m = Machine(MachineConfig(HostConfig(disks=disks or []), vms))
    try:
        m.power_on()
        m.run(until_ns=until_ns, wall_timeout_s=120)
        report = m.report()
    finally:
        m.close()
    return {v["name"]: v for v in report["vms"]}


def us_per_op(console: str, phase: str) -> int:
    return int(re.search(rf"{phase} .*, (\d+) us/op", console).group(1))


def test_tinyos_lists_and_cats_its_files_over_virtio_blk(tmp_path):
    disk = tmp_path / "tinyos.img"
    shutil.copy(IMAGES_DIR / "tinyos.img", disk)
    vm = VmConfig(name="tinyos", disk=disk, disk_bus="virtio", input=b"ls\ncat motd\npoweroff\n")
    report = run([vm])["tinyos"]
    console = report["console"].replace("\r\n", "\n")
    assert "virtio-blk: disk of 128 sectors at 0xd0000000\nfs: TinyFS with 3 files" in console
    assert "ata0:" not in console                          # the ATA channel has no disk now
    assert re.search(r"motd +49 bytes", console) and "Welcome to tinyos!" in console
    assert report["state"] == "powered_off"
    assert report["disk"]["bus"] == "virtio" and report["disk"]["reads"] >= 2


def test_virtio_costs_a_hundred_times_fewer_exits_per_kib_than_ata(tmp_path):
    results = {}
    for bus in ("ata", "virtio"):
        vm = diskbench(tmp_path, bus, "kib=64 block=4 ops=16 qd=1 mode=verify", disk_bus=bus)
        report = run([vm])[bus]
        assert "done, 0 errors" in report["console"]
        results[bus] = report["disk"]
    assert results["ata"]["exits_per_kib"] > 200               # 128 32-bit INs or OUTs per sector
    assert results["virtio"]["exits_per_kib"] < results["ata"]["exits_per_kib"] / 100
    assert results["virtio"]["bytes_written"] == results["ata"]["bytes_written"] == 128 * 1024


def test_a_hard_disk_is_far_slower_than_nvme_for_random_reads_in_guest_time(tmp_path):
    figures = {}
    for kind in ("hdd", "nvme"):
        vm = diskbench(tmp_path, kind, "kib=256 block=4 ops=40 qd=1 mode=randread reports=1", disk_bus="virtio")
        report = run([vm], disks=[{"name": "d0", "kind": kind}])[kind]
        figures[kind] = (us_per_op(report["console"], "rand-read"), report["disk"]["latency_us_p50"])
    (hdd_op, hdd_p50), (nvme_op, nvme_p50) = figures["hdd"], figures["nvme"]
    assert hdd_p50 > 4000 and nvme_p50 < 30                    # seek + half a rotation vs flash
    assert hdd_op > 50 * nvme_op                               # what the guest measured itself


def fight(tmp_path, kind, seconds, **b_settings):
    cmd = "kib=256 block=4 ops=50 qd=4 seed={} mode=randread reports=0"
    vms = [diskbench(tmp_path, "a", cmd.format(1), disk_bus="virtio", io_shares="high"),
           diskbench(tmp_path, "b", cmd.format(2), disk_bus="virtio", **b_settings)]
    return run(vms, disks=[{"name": "d0", "kind": kind}], until_ns=int(seconds * SECOND))


def test_two_vms_on_one_hard_disk_get_io_in_proportion_to_their_shares(tmp_path):
    vms = fight(tmp_path, "hdd", 1.0, io_shares="normal")          # high = 2000, normal = 1000
    a, b = vms["a"]["disk"], vms["b"]["disk"]
    assert a["reads"] / b["reads"] == pytest.approx(2.0, rel=0.2)
    assert b["latency_us_p50"] > a["latency_us_p50"]                # b waits longer in the queue
    assert a["physical_disk"] == b["physical_disk"] == "d0" and a["queue_depth_max"] == 4


def test_an_iops_limit_caps_its_vm_and_the_neighbour_gets_the_rest(tmp_path):
    vms = fight(tmp_path, "ssd", 0.5, iops_limit=100)
    a, b = vms["a"]["disk"], vms["b"]["disk"]
    assert b["reads"] == pytest.approx(100 * 0.5, rel=0.2)
    assert a["reads"] > 10 * b["reads"]


def test_the_fight_is_the_same_on_every_run(tmp_path):
    first = fight(tmp_path, "hdd", 0.3, io_shares="low")
    second = fight(tmp_path, "hdd", 0.3, io_shares="low")
    assert [first[n]["disk"] for n in "ab"] == [second[n]["disk"] for n in "ab"]


def pattern(sector: int, word: int, gen: int) -> int:
    """diskbench's pattern (guests/src/diskbench/diskbench.c)."""
    x = (sector * 0x9E3779B1 ^ word * 0x85EBCA77 ^ (gen + 1) * 0xC2B2AE3D) & 0xFFFFFFFF
    return x ^ (x >> 15)


def test_a_run_on_an_overlay_leaves_the_backing_file_untouched(tmp_path):
    base = tmp_path / "base.img"
    shutil.copy(IMAGES_DIR / "diskbench.img", base)
    write_command_line(base, "kib=64 block=4 ops=16 qd=2 mode=verify")
    before = hashlib.sha256(base.read_bytes()).hexdigest()
    overlay = tmp_path / "overlay.qcow2"
    create_image(str(overlay), "qcow2", backing=str(base))
    report = run([VmConfig(name="vm", disk=overlay, disk_bus="virtio")])["vm"]
    assert "done, 0 errors" in report["console"] and report["disk"]["writes"] > 0
    assert hashlib.sha256(base.read_bytes()).hexdigest() == before
    with open_image(str(overlay)) as img:                      # the writes went to the overlay
        first = img.read(DISKBENCH_REGION_START, 4)
    assert struct.unpack("<I", first)[0] != 0
    if QEMU_IMG:                                               # and QEMU takes the image back
        check = subprocess.run([QEMU_IMG, "check", str(overlay)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_what_the_guest_flushed_is_in_the_file(tmp_path, monkeypatch):
    synced = []
    real_fsync = __import__("os").fsync
    monkeypatch.setattr("os.fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    vm = diskbench(tmp_path, "vm", "kib=64 block=4 ops=16 qd=1 mode=verify", disk_bus="ata")
    report = run([vm])["vm"]
    assert report["disk"]["flushes"] == 2 and len(synced) >= 2
    data = (tmp_path / "vm.img").read_bytes()
    sector = DISKBENCH_REGION_START // 512
    words = struct.unpack_from("<4I", data, DISKBENCH_REGION_START)
    generation = 1 if words[0] == pattern(sector, 0, 1) else 2    # rewritten by rand-write or not
    assert list(words) == [pattern(sector, i, generation) for i in range(4)]


def test_machine_config_rows_for_disks_buses_and_limits(tmp_path):
    disk = tmp_path / "d.img"
    shutil.copy(IMAGES_DIR / "diskbench.img", disk)
    cfg = tmp_path / "m.toml"
    cfg.write_text('[host]\ndisks = [{ name = "hdd0", kind = "hdd" }, { name = "fast", kind = "nvme" }]\n'
                   '[[vm]]\nname = "a"\ndisk = "d.img"\ndisk_bus = "virtio"\nhost_disk = "fast"\n'
                   'io_shares = "high"\niops_limit = 500\nbandwidth_limit_mib = 8\nreadonly = true\n')
    config = load_machine(cfg)
    vm = config.vms[0]
    assert (vm.disk_bus, vm.host_disk, vm.io_shares, vm.iops_limit, vm.bandwidth_limit_mib, vm.readonly) == \
        ("virtio", "fast", "high", 500, 8, True)
    assert config.host.disks[1] == {"name": "fast", "kind": "nvme"}


@pytest.mark.parametrize("host, vm, complaint", [
    ('disks = [{ name = "d", kind = "floppy" }]', "", "kind must be one of hdd, ssd, nvme, ideal"),
    ('disks = [{ name = "d" }]', "", "entry 1 must be { name = NAME, kind = KIND }"),
    ("", 'disk_bus = "scsi"', "'disk_bus' = 'scsi' must be one of ata, virtio"),
    ("", "iops_limit = 0", "'iops_limit' = 0 must be between"),
])
def test_bad_storage_settings_are_one_line_errors(tmp_path, host, vm, complaint):
    shutil.copy(IMAGES_DIR / "diskbench.img", tmp_path / "d.img")
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[host]\n{host}\n[[vm]]\nname = "a"\ndisk = "d.img"\n{vm}\n')
    with pytest.raises(ConfigError, match=re.escape(complaint)):
        load_machine(cfg)


def test_a_vm_on_a_disk_the_host_does_not_have_is_refused(tmp_path):
    vm = diskbench(tmp_path, "a", "mode=verify", host_disk="ssd9")
    with pytest.raises(ConfigError, match="host_disk 'ssd9' is not one of the \\[host\\] disks \\(d0\\)"):
        Machine(MachineConfig(HostConfig(disks=[{"name": "d0", "kind": "ssd"}]), [vm]))
