"""``sandbox doctor``: what this machine offers the sandbox, and what that means.

Prints the Python and host, the Unicorn engine (always there: the deterministic
backend), what KVM offers (see ``sandbox.backends.kvm.probe``) and any lines other
subsystems add through ``extra_lines()``. ``--json`` prints the same as one object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
from typing import Iterable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


# --- ARCHITECT HOOK ---------------------------------------------------------------------
def extra_lines() -> list[str]:
    """Lines other subsystems add to the report, e.g. which deterministic clock is
    available ("deterministic clock: native instruction counter (x86-64)"). The
    architect wires this up; until then it adds nothing."""
    return []
# -----------------------------------------------------------------------------------------


def unicorn_info() -> dict:
    try:
        import unicorn
    except ImportError as e:
        return {"available": False, "problem": f"not installed ({e}); pip install unicorn==2.1.4"}
    return {"available": True, "version": unicorn.__version__,
            "note": "software emulation in every mode; the only deterministic backend"}


def gather(extra: Iterable[str] = ()) -> dict:
    from sandbox.backends.kvm.probe import probe
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "host": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "unicorn": unicorn_info(),
        "kvm": probe().to_dict(),
        "extra": list(extra),
    }


def report(info: dict) -> list[str]:
    lines = ["Virtualization Sandbox doctor",
             f"Python: {info['python']} on {info['host']}"]
    uc = info["unicorn"]
    lines.append(f"Unicorn: {uc['version']} ({uc['note']})" if uc["available"]
                 else f"Unicorn: missing: {uc['problem']}")
    lines += info["kvm"]["summary"].splitlines()
    lines += info["extra"]
    return lines


def run(args: argparse.Namespace) -> int:
    info = gather(extra_lines())
    if getattr(args, "json", False):
        print(json.dumps(info, indent=2, sort_keys=True))
    else:
        print("\n".join(report(info)))
    return 0 if info["unicorn"]["available"] or info["kvm"]["usable"] else 1
