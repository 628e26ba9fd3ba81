"""The network in a machine config ([[switch]] and a VM's nic = {...}), on the command
line (sandbox run --pcap, sandbox switch show) and in the run report."""
from __future__ import annotations

import json

import pytest

from sandbox.cli.main import main
from sandbox.config.load import load_machine
from sandbox.errors import ConfigError
from sandbox.guestbuild import IMAGES_DIR
from sandbox.net.frames import generated_mac
from sandbox.net.netconfig import kernel_cmdline
from sandbox.net.pcap import read_pcap

TINYOS = IMAGES_DIR / "tinyos.elf"
needs_tinyos = pytest.mark.skipif(not TINYOS.exists(), reason="guest images not built (sandbox guests build)")

ISSUE_EXAMPLE = f"""
[[switch]]
name = "vswitch0"
ports = 8
mirror_to = "monitor"              # optional SPAN port
[[vm]]
name = "web"
kernel = "{TINYOS}"
nic = {{ switch = "vswitch0", mac = "52:54:00:12:34:56", vlan = 10, ip = "10.0.10.2/24", gateway = "10.0.10.1" }}
[[vm]]
name = "router"
kernel = "{TINYOS}"
nic = {{ switch = "vswitch0", trunk = [10, 20] }}
[[vm]]
name = "monitor"
kernel = "{TINYOS}"
nic = {{ switch = "vswitch0", rate_limit_mbit = 10 }}
"""

PAIR = f"""
[[switch]]
name = "lan"
[[vm]]
name = "a"
kernel = "{TINYOS}"
input = "ping 10.0.0.2 2\\n"
nic = {{ switch = "lan", ip = "10.0.0.1/24" }}
[[vm]]
name = "b"
kernel = "{TINYOS}"
nic = {{ switch = "lan", ip = "10.0.0.2/24" }}
"""


def write(tmp_path, text: str):
    path = tmp_path / "net.toml"
    path.write_text(text)
    return path


@needs_tinyos
def test_the_issue_example_loads(tmp_path):
    config = load_machine(write(tmp_path, ISSUE_EXAMPLE))
    (switch,) = config.switches
    assert (switch.name, switch.ports, switch.mirror_to, switch.ageing_s) == ("vswitch0", 8, "monitor", 300)
    web, router, monitor = config.vms
    assert web.nic.vlan == 10 and web.nic.mac == "52:54:00:12:34:56"
    assert router.nic.trunk == [10, 20] and monitor.nic.rate_limit_mbit == 10
    assert kernel_cmdline(web) == "ip=10.0.10.2/24 gw=10.0.10.1"


def test_generated_macs_are_stable_and_unicast():
    assert generated_mac("web") == generated_mac("web") != generated_mac("db")
    assert generated_mac("web").startswith("52:54:00:")


@needs_tinyos
@pytest.mark.parametrize("change, message", [
    ('switch = "vswitch0"', "no switch named 'nope'"),
    ('vlan = 10', "either an access port ('vlan') or a trunk"),
    ('mac = "52:54:00:12:34:56"', "is a group (multicast) address"),
    ('vlan = 10', "'vlan' = 5000 must be between 1 and 4094"),
    ('vlan = 10', "unknown key 'vlna'"),
    ('ports = 8', "3 NICs but only 2 ports"),
    ('mirror_to = "monitor"', "mirror_to 'nobody' is not a VM with a NIC on this switch"),
    ('ip = "10.0.10.2/24"', "needs a prefix length"),
])
def test_network_mistakes_are_one_line_errors(tmp_path, change, message):
    replacement = {
        "no switch named 'nope'": 'switch = "nope"',
        "either an access port ('vlan') or a trunk": "vlan = 10, trunk = [10]",
        "is a group (multicast) address": 'mac = "53:54:00:12:34:56"',
        "'vlan' = 5000 must be between 1 and 4094": "vlan = 5000",
        "unknown key 'vlna'": "vlna = 10",
        "3 NICs but only 2 ports": "ports = 2",
        "mirror_to 'nobody' is not a VM with a NIC on this switch": 'mirror_to = "nobody"',
        "needs a prefix length": 'ip = "10.0.10.2"',
    }[message]
    text = ISSUE_EXAMPLE.replace(change, replacement, 1)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        load_machine(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_a_nic_needs_a_switch_section(tmp_path):
    text = f'[[vm]]\nname = "a"\nkernel = "{TINYOS}"\nnic = {{ switch = "sw" }}\n'
    if not TINYOS.exists():
        pytest.skip("guest images not built")
    with pytest.raises(ConfigError, match="no switch named 'sw' \\(known: none: add a \\[\\[switch\\]\\]\\)"):
        load_machine(write(tmp_path, text))


@needs_tinyos
def test_run_with_pcap_and_report(tmp_path, capsys):
    config, pcap, report = write(tmp_path, PAIR), tmp_path / "cap.pcap", tmp_path / "report.json"
    status = main(["run", str(config), "--for", "0.4", "--quiet", "--pcap", f"lan={pcap}", "--report", str(report)])
    assert status == 0
    frames = list(read_pcap(pcap))
    assert len(frames) >= 6 and all(t2 >= t1 for (t1, _), (t2, _) in zip(frames, frames[1:]))
    data = json.loads(report.read_text())
    a = data["vms"][0]
    assert "2 received" in a["console"]
    assert {k: a["net"][k] for k in ("switch", "port", "vlan")} == {"switch": "lan", "port": 1, "vlan": "access 1"}
    assert data["switches"][0]["name"] == "lan" and len(data["switches"][0]["mac_table"]) == 2

    assert main(["switch", "show", str(report)]) == 0
    out = capsys.readouterr().out
    assert "switch lan: 2 of 8 ports in use, ageing 300 s" in out
    assert "MAC table (2 entries, 0 aged out):" in out and "access 1" in out


@needs_tinyos
def test_pcap_option_errors(tmp_path, capsys):
    config = write(tmp_path, PAIR)
    assert main(["run", str(config), "--pcap", "nosuch=x.pcap", "--for", "0.01"]) == 2
    assert "no switch named 'nosuch' (known: lan)" in capsys.readouterr().err
    assert main(["run", str(config), "--pcap", "lan", "--for", "0.01"]) == 2
    assert "expected SWITCH=FILE" in capsys.readouterr().err


@needs_tinyos
def test_switch_show_runs_a_config(tmp_path, capsys):
    assert main(["switch", "show", str(write(tmp_path, PAIR)), "--for", "0.3", "--json"]) == 0
    (state,) = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in state["port_list"]] == ["a", "b"]
    assert state["decisions"]["forwarded"] >= 4


def test_switch_reasons_lists_every_drop_reason(capsys):
    assert main(["switch", "reasons"]) == 0
    out = capsys.readouterr().out
    assert "runt" in out and "vlan not allowed" in out and "rate limit" in out


@needs_tinyos
def test_the_example_in_docs_network_md_works(tmp_path):
    doc = (IMAGES_DIR.parent.parent / "docs" / "network.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    config = load_machine(write(tmp_path, example.replace('"guests/images/', f'"{IMAGES_DIR}/')))
    config.vms[0].input = b"ping 10.0.20.2 2\n"
    from sandbox.api import Machine   # noqa: PLC0415
    with Machine(config) as m:
        m.power_on()
        web = m.vms["web"]
        m.run(until_ns=2_000_000_000, wall_timeout_s=60, should_stop=lambda: b"packet loss" in web.console)
        assert b"2 received" in web.console
        assert b"router: 10.0.10.2 > 10.0.20.2 vlan 10 -> vlan 20, ttl 63" in m.vms["router"].console


@needs_tinyos
def test_the_benchmark_measures_both_figures():
    from sandbox.net.net_bench import path_and_pure   # noqa: PLC0415
    figures = path_and_pure(count=40)
    assert 0 < figures["switch_fps_ratio"] < 1 and figures["pure_fps"] > figures["path_fps"] > 0
