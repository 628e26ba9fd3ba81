"""The ``sandbox`` command: a table of subcommands, each in its own module.

Each module defines ``add_arguments(parser)`` and ``run(args) -> int``. A
``SandboxError`` anywhere becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass

from sandbox.errors import SandboxError


@dataclass(frozen=True)
class Command:
    name: str
    module: str
    help: str


COMMANDS: tuple[Command, ...] = (
    Command("run", "sandbox.cli.run_cmd", "Boot a disk image, a Multiboot kernel or a machine config."),
    Command("bench", "sandbox.cli.bench_cmd", "Measure the hypervisor against the raw engines."),
    Command("guests", "sandbox.cli.guests_cmd", "Build the shipped guest OS images from their sources."),
    Command("disk", "sandbox.cli.disk_cmd", "Create, inspect, snapshot and convert virtual disks."),
    Command("lesson", "sandbox.cli.lesson_cmd", "List the lessons and play one step by step."),
    Command("lab", "sandbox.cli.lab_cmd", "Start, check and grade the pytest-graded labs."),
    Command("switch", "sandbox.cli.switch_cmd", "Show a virtual switch: ports, VLANs, counters, MAC table."),
    Command("doctor", "sandbox.cli.doctor_cmd", "Say what this machine offers (KVM, engines, clocks)."),
    Command("memcheck", "sandbox.cli.memcheck_cmd", "Run a scenario and check memory isolation as it runs."),
)


class _Broken:
    """Stands in for a subcommand module that failed to import."""

    def __init__(self, name: str, error: ImportError) -> None:
        self.name, self.error = name, error

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("rest", nargs=argparse.REMAINDER)

    def run(self, args: argparse.Namespace) -> int:
        raise SandboxError(f"the '{self.name}' command cannot load: {self.error}")


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="sandbox", description="A teaching hypervisor: "
                                     "run tiny guest operating systems on virtual CPUs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules: dict[str, object] = {}
    for cmd in COMMANDS:
        try:
            module = importlib.import_module(cmd.module)
        except ImportError as e:
            if e.name == cmd.module:
                continue                  # a subcommand that is not part of this build
            module = _Broken(cmd.name, e)   # one broken command must not take down the others
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        module.add_arguments(p)
        modules[cmd.name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sandbox: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
