"""``sandbox switch``: look inside the virtual switches of a machine.

``show CONFIG.toml`` runs the machine for a while (quietly) and prints each switch's
ports (VLANs, counters, drops by reason) and MAC table (with ages); ``show
REPORT.json`` prints the same from a saved ``sandbox run --report``; ``reasons``
lists why a switch drops a frame.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from sandbox.config.load import load_machine, unescape
from sandbox.errors import ConfigError
from sandbox.net.show import format_switch
from sandbox.net.switch import DROP_REASONS


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    show = sub.add_parser("show", help="print each switch's ports and MAC table")
    show.add_argument("target", help="machine config (.toml, run first) or run report (.json)")
    show.add_argument("--for", dest="for_seconds", type=float, default=1.0, metavar="SECONDS",
                      help="guest time to run a config before looking (default 1)")
    show.add_argument("--input", action="append", default=[], metavar="VM=TEXT",
                      help="serial input for one VM (\\n allowed), e.g. --input 'web=ping 10.0.0.2\\n'")
    show.add_argument("--timeout", type=float, default=120, metavar="SECONDS", help="wall-clock limit")
    show.add_argument("--switch", metavar="NAME", help="only this switch")
    show.add_argument("--json", action="store_true", help="print the switches as JSON")
    sub.add_parser("reasons", help="why a switch drops a frame")


def _states_from_config(args: argparse.Namespace) -> list[dict]:
    from sandbox.api import Machine   # noqa: PLC0415
    config = load_machine(args.target)
    inputs = {}
    for spec in args.input:
        name, sep, text = spec.partition("=")
        if not sep or name not in {vm.name for vm in config.vms}:
            raise ConfigError(f"--input {spec}: expected VM=TEXT with a VM of {args.target}")
        inputs[name] = unescape(text)
    for vm in config.vms:
        if vm.name in inputs:
            vm.input = inputs[vm.name]
    with Machine(config) as machine:
        machine.power_on()
        machine.run(until_ns=int(args.for_seconds * 1e9), wall_timeout_s=args.timeout)
        return machine.hypervisor.network.state(machine.now_ns)


def _states_from_report(path: str) -> list[dict]:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path}: cannot read the report ({e})") from None
    if not isinstance(report, dict) or "switches" not in report:
        raise ConfigError(f"{path}: not a run report with switches (sandbox run --report FILE)")
    return report["switches"]


def run(args: argparse.Namespace) -> int:
    if args.action == "reasons":
        for reason, why in DROP_REASONS.items():
            print(f"{reason:<22} {why}")
        return 0
    if args.action != "show":
        raise ConfigError("say what to do: sandbox switch show CONFIG.toml (or REPORT.json), or sandbox switch reasons")
    states = _states_from_report(args.target) if args.target.endswith(".json") else _states_from_config(args)
    if args.switch:
        states = [s for s in states if s["name"] == args.switch]
        if not states:
            raise ConfigError(f"--switch {args.switch}: no such switch in {args.target}")
    if not states:
        raise ConfigError(f"{args.target}: no [[switch]] in this machine")
    if args.json:
        print(json.dumps(states, indent=2))
        return 0
    for i, state in enumerate(states):
        if i:
            print()
        print("\n".join(format_switch(state)))
    return 0
