"""The memory keys of a machine config, the event kinds the memory manager publishes,
and the benchmark's hand-assembled guest."""
from __future__ import annotations

import pytest
from asm import assemble, needs_as

from sandbox.config.load import load_machine
from sandbox.errors import ConfigError
from sandbox.events import EVENT_KINDS
from sandbox.hypervisor import mem_bench

ISSUE_EXAMPLE = """
[host]
memory_mib = 48
page_sharing = true
pages_to_scan = 100
scan_period_ms = 20
swap_file = "host.swap"
[[vm]]
name = "a"
memory_mib = 16
kernel = "k.elf"
mem_reservation_mib = 4
mem_limit_mib = 12
mem_shares = "normal"
balloon = true
"""


def write(tmp_path, text: str):
    (tmp_path / "k.elf").write_bytes(b"\x7fELF")
    path = tmp_path / "machine.toml"
    path.write_text(text)
    return path


def test_the_memory_keys_of_the_issue_load(tmp_path):
    config = load_machine(write(tmp_path, ISSUE_EXAMPLE))
    host, vm = config.host, config.vms[0]
    assert (host.memory_mib, host.page_sharing, host.pages_to_scan, host.scan_period_ms) == (48, True, 100, 20)
    assert host.swap_file == tmp_path / "host.swap"             # relative to the config file
    assert (vm.mem_reservation_mib, vm.mem_limit_mib, vm.mem_shares, vm.balloon) == (4, 12, "normal", True)


@pytest.mark.parametrize("old, new, message", [
    ('page_sharing = true', 'page_sharing = "yes"', 'must be true, false or "vm"'),
    ('pages_to_scan = 100', 'pages_to_scan = 0', "must be between 1 and 1000000"),
    ('mem_shares = "normal"', 'mem_shares = "huge"', "must be low, normal, high or a number"),
    ('balloon = true', 'balloon = 1', "'balloon' must be bool"),
    ('mem_limit_mib = 12', 'mem_limt_mib = 12', "did you mean 'mem_limit_mib'"),
])
def test_bad_memory_keys_are_one_line_errors(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load_machine(write(tmp_path, ISSUE_EXAMPLE.replace(old, new)))


def test_every_memory_event_kind_is_in_the_table():
    published = {"mem.alloc", "mem.share", "mem.cow", "mem.isolation", "mem.balloon", "mem.swap_out",
                 "mem.swap_in", "mem.release", "mem.scan", "mem.state", "mem.violation"}
    assert published <= set(EVENT_KINDS)


@needs_as
def test_the_benchmark_guest_is_what_its_source_assembles_to():
    assert mem_bench.WRITER == assemble(mem_bench.WRITER_SOURCE, 0x7C00)


def test_the_scan_rate_figures_are_measured():
    rates = mem_bench.scan_rates(vms=2, pages=64)
    assert rates["scan_pages_per_s"] > 0 and rates["hash_pages_per_s"] > 0
    assert rates["scan_vs_hash"] == pytest.approx(rates["scan_pages_per_s"] / rates["hash_pages_per_s"])
