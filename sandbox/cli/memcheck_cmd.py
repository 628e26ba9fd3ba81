"""``sandbox memcheck``: run a scenario and check memory isolation as it runs.

Every ``--every`` milliseconds of guest time the isolation checker compares every VM's
frame table with host RAM (sandbox/hypervisor/isolation.py). The first broken invariant
stops the run and is printed (exit status 1); otherwise a summary of the host's memory
(sharing, ballooning, swapping) and of each VM follows.
"""
from __future__ import annotations

import argparse
import json
import sys

from sandbox.api import Machine
from sandbox.config.load import load_machine
from sandbox.errors import ConfigError
from sandbox.hypervisor.isolation import RULES
from sandbox.hypervisor.mem_report import host_memory, vm_memory

BROKEN = 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="machine config (.toml) to run")
    p.add_argument("--for", dest="for_seconds", type=float, default=None, metavar="SECONDS",
                   help="stop after this much guest time (default: when every VM has stopped)")
    p.add_argument("--every", type=float, default=10.0, metavar="MS",
                   help="guest milliseconds between two checks (default 10)")
    p.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS", help="wall-clock limit")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--console", action="store_true", help="stream the guests' serial consoles")


def run(args: argparse.Namespace) -> int:
    if not args.config.endswith(".toml"):
        raise ConfigError(f"{args.config}: memcheck needs a machine config (.toml)")
    if args.every <= 0:
        raise ConfigError(f"--every {args.every}: must be more than 0 ms")
    machine = Machine(load_machine(args.config))
    try:
        if args.console:
            for vm in machine.vms.values():
                machine.attach_console(vm.name, lambda data, n=vm.name: print(f"[{n}] {data.decode('latin-1')}",
                                                                               end="", flush=True))
        machine.power_on()
        return _check_while_running(machine, args)
    finally:
        machine.close()


def _check_while_running(machine: Machine, args: argparse.Namespace) -> int:
    step = int(args.every * 1_000_000)
    end = int(args.for_seconds * 1e9) if args.for_seconds is not None else None
    checks, outcome = 0, "time"
    while outcome == "time" and (end is None or machine.now_ns < end):
        target = machine.now_ns + step if end is None else min(end, machine.now_ns + step)
        outcome = machine.run(until_ns=target, wall_timeout_s=args.timeout)
        problems = machine.memcheck()
        checks += 1
        if problems:
            print(f"memcheck: isolation BROKEN at {machine.now_ns / 1e9:.3f} s of guest time:")
            for p in problems:
                print(f"  {p.rule}: {p.message}\n    (rule: {RULES[p.rule]})")
            return BROKEN
    summary = _summary(machine, checks, outcome)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_summary(summary)
    return 0


def _summary(machine: Machine, checks: int, outcome: str) -> dict:
    mm = machine.hypervisor.memory_manager
    return {
        "checks": checks, "outcome": outcome, "guest_seconds": machine.now_ns / 1e9, "isolated": True,
        "host": host_memory(mm),
        "vms": {name: {"state": vm.state.value, **vm_memory(mm, name)} for name, vm in machine.vms.items()},
    }


def _print_summary(s: dict) -> None:
    h = s["host"]
    print(f"memcheck: {s['checks']} checks over {s['guest_seconds']:.3f} s of guest time "
          f"({s['outcome']}): isolation holds")
    print(f"host: {h['frames_total']} frames, {h['frames_free']} free, state {h['state']}; "
          f"sharing ({h['page_sharing']}): {h['pages_shared']} shared frames serve "
          f"{h['pages_shared'] + h['pages_sharing']} pages ({h['zero_pages_shared']} zero), "
          f"{h['full_scans']} full scans; swapped {h['swapped_pages']}; ballooned {h['ballooned_pages']}")
    print(f"{'VM':12} {'state':12} {'resident':>8} {'shared':>7} {'swapped':>8} {'balloon':>8} {'CoW':>6}")
    for name, v in s["vms"].items():
        print(f"{name:12} {v['state']:12} {v['resident_pages']:8} {v['shared_pages']:7} "
              f"{v['swapped_pages']:8} {v['ballooned_pages']:8} {v['cow_faults']:6}")
    sys.stdout.flush()
