"""Guests on the virtual network: tinyos VMs ping each other through a switch, VLANs
keep them apart unless the router guest joins them, and the capture opens in tshark."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from sandbox.api import Machine
from sandbox.config.model import HostConfig, MachineConfig, NicConfig, SwitchConfig, VmConfig
from sandbox.events import EventRecorder
from sandbox.guestbuild import IMAGES_DIR
from sandbox.net import frames as f
from sandbox.net.pcap import read_pcap
from sandbox.net.vlan import PortVlan

TINYOS, ROUTER = IMAGES_DIR / "tinyos.elf", IMAGES_DIR / "router.elf"
pytestmark = pytest.mark.skipif(not (TINYOS.exists() and ROUTER.exists()),
                                reason="guest images not built (sandbox guests build)")


def tinyos(name: str, **nic) -> VmConfig:
    return VmConfig(name=name, kernel=TINYOS, nic=NicConfig(switch="sw0", **nic))


def router() -> VmConfig:
    return VmConfig(name="router", kernel=ROUTER, cmdline="vlan10=10.0.10.1/24 vlan20=10.0.20.1/24",
                    nic=NicConfig(switch="sw0", trunk=[10, 20]))


def machine(*vms: VmConfig, **switch) -> Machine:
    return Machine(MachineConfig(HostConfig(cpus=1), list(vms), switches=[SwitchConfig("sw0", **switch)]))


def boot(m: Machine) -> None:
    m.power_on()
    m.run(until_ns=2_000_000_000, wall_timeout_s=60,
          should_stop=lambda: all(b"tinyos> " in vm.console or b"forwarding IPv4" in vm.console
                                  for vm in m.vms.values()))


def shell(m: Machine, vm: str, command: str, until: bytes = b"packet loss") -> str:
    """Type a command and run until its output (and the next prompt) is complete."""
    console = m.vms[vm].console
    start = len(console)
    m.feed(vm, command + "\n")
    m.run(until_ns=m.now_ns + 5_000_000_000, wall_timeout_s=60,
          should_stop=lambda: until in console[start:] and console.endswith(b"tinyos> "))
    return console[start:].decode("latin-1").replace("\r\n", "\n")


def test_two_vms_ping_each_other():
    with machine(tinyos("a", ip="10.0.0.1/24"), tinyos("b", ip="10.0.0.2/24")) as m:
        rec = EventRecorder(m.events, ["power.guest_start", "power.network_attached", "power.running"])
        boot(m)
        assert [e.kind for e in rec.of("power.network_attached")] and rec.kinds()[:3] == [
            "power.guest_start", "power.network_attached", "power.running"]
        out = shell(m, "a", "ping 10.0.0.2 3")
        assert out.count("bytes from 10.0.0.2: icmp_seq=") == 3 and "3 received, 0% packet loss" in out
        assert re.search(r"icmp_seq=2 ttl=64 time=\d+\.\d{3} ms", out)
        assert "3 received" in shell(m, "b", "ping 10.0.0.1 3")
        net = {vm["name"]: vm["net"] for vm in m.report()["vms"]}
        assert net["a"]["tx_frames"] >= 4 and net["a"]["rx_frames"] >= 4 and net["a"]["drops"] == 0
        assert set(net["b"]) >= {"tx_frames", "rx_frames", "tx_bytes", "rx_bytes", "drops"}
        table = m.report()["switches"][0]["mac_table"]
        assert sorted(row["port_name"] for row in table) == ["a", "b"]


def test_the_echo_service_answers_udp_port_7():
    with machine(tinyos("a", ip="10.0.0.1/24", mac="52:54:00:00:00:0a")) as m:
        boot(m)
        sw = m.hypervisor.network.switches["sw0"]
        got: list[bytes] = []
        probe = sw.attach("probe", PortVlan.access(), lambda fr, at: got.append(fr))
        me, me_ip, a_ip = f.mac_bytes("02:00:00:00:00:99"), f.ip_bytes("10.0.0.9"), f.ip_bytes("10.0.0.1")
        a_mac = f.mac_bytes("52:54:00:00:00:0a")
        arp = f.arp(f.ARP_REQUEST, me, me_ip, bytes(6), a_ip)
        sw.receive(probe.number, f.ethernet(f.BROADCAST, me, f.ETHERTYPE_ARP, arp), m.now_ns)
        datagram = f.ipv4(me_ip, a_ip, f.PROTO_UDP, f.udp(4000, 7, b"hello, echo"))
        sw.receive(probe.number, f.ethernet(a_mac, me, f.ETHERTYPE_IPV4, datagram), m.now_ns)
        m.run(until_ns=m.now_ns + 20_000_000)
        summaries = [f.describe(fr) for fr in got]
        assert summaries[0] == "ARP 10.0.0.1 is-at 52:54:00:00:00:0a"
        assert summaries[1] == "IPv4 10.0.0.1 > 10.0.0.9 UDP 7 > 4000 length 11"
        assert got[1][14 + 28:14 + 28 + 11] == b"hello, echo"
        assert "1 datagrams echoed" in shell(m, "a", "net", until=b"echoed")


def test_access_vlans_cannot_reach_each_other_without_a_router():
    with machine(tinyos("web", ip="10.0.0.1/24", vlan=10), tinyos("db", ip="10.0.0.2/24", vlan=20)) as m:
        boot(m)
        out = shell(m, "web", "ping 10.0.0.2 2")
        assert "2 packets transmitted, 0 received, 100% packet loss" in out
        report = m.report()
        db = next(vm for vm in report["vms"] if vm["name"] == "db")
        assert db["net"]["rx_frames"] == 0
        web_port = report["switches"][0]["port_list"][0]
        assert web_port["drops"] == {"no vlan members": web_port["rx_frames"]}


def test_the_router_guest_forwards_between_vlans_and_the_mirror_sees_both_ways():
    web = tinyos("web", ip="10.0.10.2/24", gateway="10.0.10.1", vlan=10)
    db = tinyos("db", ip="10.0.20.2/24", gateway="10.0.20.1", vlan=20)
    monitor = VmConfig(name="monitor", kernel=TINYOS, nic=NicConfig(switch="sw0"))
    with machine(web, db, router(), monitor, mirror_to="monitor") as m:
        boot(m)
        out = shell(m, "web", "ping 10.0.20.2 2")
        assert "2 received" in out and "ttl=63" in out          # one router hop on the way back
        sw = m.hypervisor.network.switches["sw0"]
        mirror = sw.ports[4]
        assert mirror.mirror and mirror.tx_frames == sum(p.rx_frames for p in sw.ports.values() if not p.mirror)
        macs = {row["port_name"]: row["vlan"] for row in sw.mac_rows() if row["port_name"] != "router"}
        assert macs == {"web": 10, "db": 20}
        assert {row["vlan"] for row in sw.mac_rows() if row["port_name"] == "router"} == {10, 20}


def _captured_ping(path) -> None:
    with machine(tinyos("a", ip="10.0.0.1/24"), tinyos("b", ip="10.0.0.2/24")) as m:
        m.hypervisor.network.capture("sw0", str(path))
        boot(m)
        shell(m, "a", "ping 10.0.0.2 2")


def test_deterministic_runs_give_identical_captures(tmp_path):
    _captured_ping(tmp_path / "one.pcap")
    _captured_ping(tmp_path / "two.pcap")
    one = (tmp_path / "one.pcap").read_bytes()
    assert one == (tmp_path / "two.pcap").read_bytes()
    kinds = [f.describe(fr).split(" id=")[0] for _, fr in read_pcap(tmp_path / "one.pcap")]
    assert kinds[:4] == ["ARP who-has 10.0.0.2 tell 10.0.0.1", "ARP 10.0.0.2 is-at " + kinds[1][-17:],
                         "IPv4 10.0.0.1 > 10.0.0.2 ICMP echo request", "IPv4 10.0.0.2 > 10.0.0.1 ICMP echo reply"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed (apt-get install tshark)")
def test_the_capture_opens_in_tshark(tmp_path):
    _captured_ping(tmp_path / "cap.pcap")
    done = subprocess.run(["tshark", "-r", str(tmp_path / "cap.pcap"), "-T", "fields", "-e", "frame.protocols",
                           "-e", "icmp.type"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    assert rows[0][0] == "eth:ethertype:arp" and rows[1][0] == "eth:ethertype:arp"
    assert [r[1] for r in rows if r[0] == "eth:ethertype:ip:icmp:data"] == ["8", "0", "8", "0"]


def test_learned_then_aged_then_flooded_again():
    vms = (tinyos("a", ip="10.0.0.1/24"), tinyos("b", ip="10.0.0.2/24"), tinyos("c", ip="10.0.0.3/24"))
    with machine(*vms, ageing_s=0.15) as m:
        boot(m)
        rec = EventRecorder(m.events, ["net.frame"])
        shell(m, "a", "ping 10.0.0.2 2")
        first = [(e.data["summary"].split(" id=")[0], e.data["decision"], e.data["out_names"]) for e in rec.events]
        assert first[:4] == [("ARP who-has 10.0.0.2 tell 10.0.0.1", "flooded", ["b", "c"]),
                             (first[1][0], "forwarded", ["a"]),                       # b's ARP reply
                             ("IPv4 10.0.0.1 > 10.0.0.2 ICMP echo request", "forwarded", ["b"]),
                             ("IPv4 10.0.0.2 > 10.0.0.1 ICMP echo reply", "forwarded", ["a"])]
        assert {e.data["decision"] for e in rec.events[2:]} == {"forwarded"}
        m.run(until_ns=m.now_ns + 300_000_000)                 # silence: 0.3 s > the 0.15 s ageing time
        sw = m.hypervisor.network.switches["sw0"]
        assert sw.mac_rows(m.now_ns) == [] and sw.table.aged_out == 2
        del rec.events[:]
        shell(m, "a", "ping 10.0.0.2 1")                        # a still knows b's MAC (its ARP cache)
        again = [(e.data["summary"].split(" id=")[0], e.data["decision"], e.data["out_names"]) for e in rec.events]
        assert again == [("IPv4 10.0.0.1 > 10.0.0.2 ICMP echo request", "flooded", ["b", "c"]),
                         ("IPv4 10.0.0.2 > 10.0.0.1 ICMP echo reply", "forwarded", ["a"])]


def test_switches_are_separate_networks():
    vms = [tinyos("a", ip="10.0.0.1/24"), tinyos("b", ip="10.0.0.2/24"),
           VmConfig(name="c", kernel=TINYOS, nic=NicConfig(switch="sw1", ip="10.0.0.3/24"))]
    config = MachineConfig(HostConfig(cpus=1), vms, switches=[SwitchConfig("sw0"), SwitchConfig("sw1")])
    with Machine(config) as m:
        boot(m)
        assert "1 received" in shell(m, "a", "ping 10.0.0.2 1")
        assert "0 received" in shell(m, "a", "ping 10.0.0.3 1")
        assert m.hypervisor.network.switches["sw1"].ports[1].tx_frames == 0


def test_a_rate_limited_guest_loses_what_exceeds_its_rate():
    with machine(tinyos("a", ip="10.0.0.1/24", rate_limit_mbit=0.1), tinyos("b", ip="10.0.0.2/24")) as m:
        boot(m)
        t0 = m.now_ns
        out = shell(m, "a", "ping -f 10.0.0.2 60")
        seconds = (m.now_ns - t0) / 1e9
        received = int(re.search(r"(\d+) received", out).group(1))
        net = {vm["name"]: vm["net"] for vm in m.report()["vms"]}
        a, b = net["a"], net["b"]
        assert a["drop_reasons"]["rate limit"] == a["drops"] > 0 and received < 60
        # 0.1 Mbit/s = 12,500 bytes a second, after a first burst: all that reached b came from a
        assert b["rx_bytes"] <= a["rate_limit"]["burst_bytes"] + 12_500 * seconds
