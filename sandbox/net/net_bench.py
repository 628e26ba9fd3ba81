"""The network benchmark (the "network" row of ``sandbox bench``).

* ``switch_fps_ratio``: frames per wall-clock second from one VM to another through
  the whole path (guest driver, virtqueue, MMIO exit, virtio-net, switch, the other
  NIC, its interrupt, its driver: a flood ping between two tinyos VMs), divided by
  frames per second of the pure switching function (``switch.decide``) alone on
  the same frames, in the same process.
* ``ping_rtt_guest_us``: tinyos's ping between two VMs on one switch, average
  round trip in guest microseconds (deterministic: the same on every host).
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, NicConfig, SwitchConfig, VmConfig
from sandbox.guestbuild import IMAGES_DIR
from sandbox.net.frames import parse
from sandbox.net.pcap import read_pcap
from sandbox.net.switch import MacTable, decide

TINYOS = IMAGES_DIR / "tinyos.elf"


def _pair() -> Machine:
    vms = [VmConfig(name=name, kernel=TINYOS, nic=NicConfig(switch="sw0", ip=ip))
           for name, ip in (("a", "10.0.0.1/24"), ("b", "10.0.0.2/24"))]
    return Machine(MachineConfig(HostConfig(cpus=1), vms, switches=[SwitchConfig("sw0")]))


def _command(m: Machine, vm: str, text: str, timeout_s: float = 120) -> str:
    console = m.vms[vm].console
    start = len(console)
    m.feed(vm, text + "\n")
    m.run(wall_timeout_s=timeout_s,
          should_stop=lambda: b"packet loss" in console[start:] and console.endswith(b"tinyos> "))
    out = console[start:].decode("latin-1")
    if "packet loss" not in out:
        raise RuntimeError(f"{text!r} did not finish: {out[-200:]!r}")
    return out


def _booted(m: Machine) -> None:
    m.power_on()
    m.run(wall_timeout_s=60, should_stop=lambda: all(vm.console.endswith(b"tinyos> ") for vm in m.vms.values()))


def path_and_pure(count: int = 2000) -> dict[str, float]:
    """A flood ping of ``count`` requests through the whole path, then the same frames
    through ``decide`` alone."""
    with tempfile.TemporaryDirectory(prefix="net-bench-") as tmp, _pair() as m:
        capture = Path(tmp) / "flood.pcap"
        _booted(m)
        _command(m, "a", "ping 10.0.0.2 1")                 # ARP done: the flood is ICMP only
        sw = m.hypervisor.network.switches["sw0"]
        m.hypervisor.network.capture("sw0", str(capture))
        before = sum(p.rx_frames for p in sw.ports.values())
        t0 = time.perf_counter()
        out = _command(m, "a", f"ping -f 10.0.0.2 {count}")
        path_s = time.perf_counter() - t0
        frames_through = sum(p.rx_frames for p in sw.ports.values()) - before
        sw.close()
        if f"{count} received" not in out:
            raise RuntimeError(f"the flood ping lost packets: {out.strip().splitlines()[-2:]}")
        frames = [fr for _, fr in read_pcap(capture)]
        port_of = {row["mac"]: row["port"] for row in sw.mac_rows()}
        inputs = [(port_of[":".join(f"{b:02x}" for b in parse(fr).src)], fr) for fr in frames]
        pure_s = min(_pure_seconds(sw.ports, inputs) for _ in range(3))
    path_fps = frames_through / path_s
    pure_fps = len(inputs) / pure_s
    return {"path_fps": round(path_fps), "pure_fps": round(pure_fps),
            "switch_fps_ratio": round(path_fps / pure_fps, 5)}


def _pure_seconds(ports, inputs) -> float:
    table = MacTable()
    t0 = time.perf_counter()
    for i, (port, frame) in enumerate(inputs):
        decide(table, ports, port, frame, i)
    return time.perf_counter() - t0


def ping_rtt_guest_us(count: int = 10) -> float:
    with _pair() as m:
        _booted(m)
        _command(m, "a", "ping 10.0.0.2 1")
        out = _command(m, "a", f"ping 10.0.0.2 {count}")
    match = re.search(r"rtt min/avg/max = [\d.]+/([\d.]+)/", out)
    if match is None:
        raise RuntimeError(f"no round-trip times in: {out!r}")
    return float(match.group(1)) * 1000


def measure() -> dict[str, float]:
    if not TINYOS.exists():
        return {"error": "guests/images/tinyos.elf is missing: run `sandbox guests build`"}
    return {**path_and_pure(), "ping_rtt_guest_us": round(ping_rtt_guest_us(), 1)}


if __name__ == "__main__":
    print(measure())
