"""``sandbox run``: boot guests and stream their serial consoles to the terminal."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sandbox.api import Machine
from sandbox.config.load import from_options, load_machine
from sandbox.errors import ConfigError

# Exit statuses (besides a guest's own isa-debug-exit status).
CRASHED, BAD_INPUT, TIMED_OUT = 1, 2, 124


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", help="disk image, or machine config (.toml)")
    p.add_argument("--kernel", help="boot this Multiboot ELF kernel directly (like qemu -kernel)")
    p.add_argument("--cmdline", default="", help="kernel command line (with --kernel)")
    p.add_argument("--backend", choices=("unicorn", "kvm"), default=None, help="vCPU engine (default unicorn); kvm runs in wall-clock time: "
                   "deterministic mode is Unicorn-only")
    p.add_argument("--memory", type=int, default=16, metavar="MIB", help="guest RAM in MiB (default 16)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="wall-clock limit")
    p.add_argument("--for", dest="for_seconds", type=float, default=None, metavar="SECONDS",
                   help="run this much guest time, then stop")
    p.add_argument("--input", default="", metavar="TEXT", help="text for the guest's serial input (\\n allowed)")
    p.add_argument("--screen", action="store_true", help="print the final 80x25 VGA text screen")
    p.add_argument("--trace", metavar="FILE", help="write every event as a JSON line")
    p.add_argument("--report", metavar="FILE", help="write the run report (per VM: state, console, "
                   "CPU run/ready/co-stop time, entitlement; host CPUs) as JSON")
    p.add_argument("--pcap", action="append", default=[], metavar="SWITCH=FILE",
                   help="capture every frame entering virtual switch SWITCH into a pcap file "
                   "(opens in Wireshark/tshark; timestamps are guest time)")
    p.add_argument("--fast", action="store_true", help="wall-clock time slices (faster, not reproducible)")
    p.add_argument("--quiet", action="store_true", help="do not stream the serial console")


def load(args: argparse.Namespace):
    if args.target and args.target.endswith(".toml"):
        if args.kernel:
            raise ConfigError("--kernel cannot be combined with a machine config")
        config = load_machine(args.target)
        if args.backend:
            config.host.backend = args.backend
        if args.input:
            from sandbox.config.load import unescape  # noqa: PLC0415
            config.vms[0].input = unescape(args.input)
    else:
        if not args.target and not args.kernel:
            raise ConfigError("nothing to run: give a disk image, --kernel FILE or a machine.toml")
        config = from_options(args.target, args.kernel, args.memory, args.backend or "unicorn",
                              cmdline=args.cmdline, input_text=args.input)
    if args.fast:
        config.host.deterministic = False
    return config


def run(args: argparse.Namespace) -> int:
    config = load(args)
    if config.host.backend == "kvm":
        from sandbox.backends.kvm import vm as kvm_vm   # noqa: PLC0415 (only for KVM runs)
        machine_kvm = kvm_vm.probe()
        if machine_kvm.usable:
            print(machine_kvm.startup_line(), file=sys.stderr)
    trace = open(args.trace, "w") if args.trace else None
    machine = Machine(config)
    try:
        if trace is not None:
            machine.events.subscribe(lambda ev: trace.write(ev.to_json() + "\n"))
        for spec in args.pcap:
            switch, sep, path = spec.partition("=")
            if not sep or not switch or not path:
                raise ConfigError(f"--pcap {spec}: expected SWITCH=FILE, e.g. --pcap vswitch0=capture.pcap")
            machine.hypervisor.network.capture(switch, path)
        multi = len(config.vms) > 1
        if not args.quiet:
            for vm in machine.vms.values():
                machine.attach_console(vm.name, _printer(vm.name if multi else None))
        machine.power_on()
        until = int(args.for_seconds * 1e9) if args.for_seconds is not None else None
        outcome = machine.run(until_ns=until, wall_timeout_s=args.timeout)
        sys.stdout.flush()
        if outcome == "timeout":
            machine.hypervisor.timeout_all(f"timed out after {args.timeout:g} s")
        elif outcome == "idle":
            machine.hypervisor.timeout_all("every vCPU is halted and no timer can wake it")
        failure = machine.hypervisor.scheduler.failure
        if failure is not None:
            print(f"sandbox: {failure}; fell back to round robin", file=sys.stderr)
        if args.report:
            _write_report(machine, args.report)
        if args.screen:
            for vm in machine.vms.values():
                if multi:
                    print(f"--- {vm.name} screen ---")
                print("\n".join(line.rstrip() for line in vm.screen()).rstrip("\n"))
        return _status(machine, outcome)
    finally:
        machine.close()
        if trace is not None:
            trace.close()


def _write_report(machine, path: str) -> None:
    try:
        with open(path, "w") as f:
            json.dump(machine.report(), f, indent=2)
            f.write("\n")
    except OSError as e:
        raise ConfigError(f"--report {path}: cannot write ({e.strerror})") from None


def _printer(prefix: str | None):
    out = sys.stdout
    if prefix is None:
        def write(data: bytes) -> None:
            out.write(data.decode("latin-1"))
            out.flush()
        return write
    pending = bytearray()

    def write_lines(data: bytes) -> None:
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            out.write(f"[{prefix}] {line.decode('latin-1').rstrip(chr(13))}\n")
            pending[:] = rest
        out.flush()
    return write_lines


def _status(machine, outcome: str) -> int:
    worst = 0
    for vm in machine.vms.values():
        state = vm.state.value
        if state == "powered_off":
            status = vm.exit_status or 0
        elif state == "crashed":
            print(f"sandbox: VM {vm.name} crashed: {vm.exit_reason}", file=sys.stderr)
            status = CRASHED
        elif state == "timed_out":
            print(f"sandbox: VM {vm.name} {vm.exit_reason}", file=sys.stderr)
            status = TIMED_OUT
        else:
            status = 0 if outcome == "time" else TIMED_OUT
        worst = worst or status
    return worst


__all__ = ["add_arguments", "run", "Path"]
