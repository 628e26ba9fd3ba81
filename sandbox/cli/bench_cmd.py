"""``sandbox bench``: every benchmark in one table, each a ratio measured side by side.

A row names a module with ``measure() -> dict``; rows whose module has not landed are
reported as missing rather than silently dropped. The GUI's benchmark runs in a child
process so that this package never imports Qt.
"""
from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Bench:
    name: str
    module: str
    description: str
    backend: str = "unicorn"          # which --backend the row belongs to
    subprocess: bool = False


BENCHES: tuple[Bench, ...] = (
    Bench("cpu", "sandbox.bench.cpuhog_work", "cpuhog's loop: hypervisor (fast, deterministic) vs raw Unicorn"),
    Bench("boot", "sandbox.bench.boot", "power-on to hello's first serial byte vs a bare Unicorn instance"),
    Bench("scheduler", "sandbox.hypervisor.sched_bench", "8 vCPUs on 2 pCPUs under each policy; parallel speed-up"),
    Bench("memory", "sandbox.hypervisor.mem_bench", "copy-on-write cost, sharing scan rate, twins saving"),
    Bench("storage", "sandbox.storage.disk_bench", "guest disk throughput vs reading the file directly"),
    Bench("network", "sandbox.net.net_bench", "frames through the whole path vs the switching function"),
    Bench("gui", "gui.bench", "GUI refresh rate and guest throughput with the window open", subprocess=True),
    Bench("kvm", "sandbox.backends.kvm.kvm_bench", "KVM: native ratio, exit cost, vs Unicorn", backend="kvm"),
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--only", action="append", metavar="NAME",
                   help=f"run only these ({', '.join(b.name for b in BENCHES)})")
    p.add_argument("--backend", choices=("unicorn", "kvm"), default="unicorn",
                   help="kvm adds the KVM rows (needs /dev/kvm)")


def _run_one(bench: Bench) -> dict:
    if bench.subprocess:
        out = subprocess.run([sys.executable, "-m", bench.module, "--json"], capture_output=True,
                             text=True, timeout=600)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
        return json.loads(out.stdout)
    try:
        module = importlib.import_module(bench.module)
    except ModuleNotFoundError as e:
        if e.name and bench.module.startswith(e.name):
            return {"error": "not available in this build"}
        raise
    return module.measure()


def run(args: argparse.Namespace) -> int:
    wanted = set(args.only or [])
    results: dict[str, dict] = {}
    for bench in BENCHES:
        if wanted and bench.name not in wanted:
            continue
        if bench.backend == "kvm" and args.backend != "kvm" and bench.name not in wanted:
            continue
        t0 = time.perf_counter()
        try:
            figures = _run_one(bench)
        except Exception as e:  # a benchmark that fails is reported, the others still run
            figures = {"error": f"{type(e).__name__}: {e}"}
        figures["seconds"] = round(time.perf_counter() - t0, 1)
        results[bench.name] = figures
        if not args.json:
            print(f"{bench.name}: {bench.description}")
            for key, value in figures.items():
                print(f"  {key:32} {value}")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if any("error" in r and r["error"] != "not available in this build" for r in results.values()) else 0
