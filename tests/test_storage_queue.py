"""The I/O queue of a physical disk, driven directly (no guest): latency per kind of disk,
fair shares, token-bucket limits, events, determinism."""
from __future__ import annotations

import random

import pytest

from sandbox.events import EventBus, EventRecorder
from sandbox.storage.disk_port import percentile
from sandbox.storage.io_queue import IoQueue
from sandbox.storage.latency import HddModel, Request
from sandbox.storage.token_bucket import TokenBucket

MS = 1_000_000
SECOND = 1_000_000_000


def run_closed_loop(queue: IoQueue, ports: dict, until_ns: int, depth: int = 4, size: int = 4096,
                    op: str = "read", seed: int = 1) -> dict[str, int]:
    """Each VM keeps ``depth`` random requests outstanding until ``until_ns``; the VMs
    advance their ports at their deadlines, as the hypervisor does."""
    rng = random.Random(seed)
    done = {name: 0 for name in ports}

    def resubmit(name):
        def on_done(req):
            done[name] += 1
            if req.done_ns < until_ns:
                later.append((name, req.done_ns))
        return on_done

    later: list[tuple[str, int]] = []
    for name, port in ports.items():
        for _ in range(depth):
            port.submit(op, rng.randrange(0, 512) * 8, size, resubmit(name), 0)
    while True:
        while later:
            name, t = later.pop(0)
            ports[name].submit(op, rng.randrange(0, 512) * 8, size, resubmit(name), t)
        deadlines = [d for p in ports.values() if (d := p.next_deadline()) is not None]
        if not deadlines or min(deadlines) > until_ns:
            return done
        t = min(deadlines)
        for port in ports.values():
            port.advance(t)


# --- latency models ------------------------------------------------------------------------
def test_hdd_sequential_costs_only_the_transfer_and_random_pays_seek_and_rotation():
    hdd = HddModel()
    first = hdd.service_ns(Request("read", 0, 4096))           # the head is already there
    follow_on = hdd.service_ns(Request("read", 4096, 4096))
    near = hdd.service_ns(Request("read", 1 << 20, 4096))
    far = hdd.service_ns(Request("read", 1 << 39, 4096))
    assert first == follow_on < 100_000                        # 4 KiB at 150 MiB/s: ~26 us
    assert 4 * MS < near < far < 30 * MS                       # seek + half a rotation


@pytest.mark.parametrize("kind, latency_ns", [("ssd", 100_000 + 7_812), ("nvme", 20_000 + 1_953), ("ideal", 0)])
def test_flash_disks_have_a_flat_latency_plus_the_transfer(kind, latency_ns):
    q = IoQueue("d", kind)
    port = q.attach("vm")
    got, now = [], 0
    for lba in (0, 123456, 8):
        port.submit("read", lba, 4096, got.append, now)
        now = port.next_deadline() or now
        port.advance(now)
    assert [r.latency_ns for r in got] == [latency_ns] * 3


def test_nvme_serves_eight_requests_at_once_an_hdd_one():
    for kind, parallel in (("nvme", 8), ("hdd", 1), ("ssd", 1)):
        q = IoQueue("d", kind)
        port = q.attach("vm")
        for i in range(10):
            port.submit("read", i * 8, 4096, lambda r: None, 0)
        assert len(q.in_service) == parallel, kind


# --- token buckets -----------------------------------------------------------------------------
def test_token_bucket_starts_full_then_holds_its_rate():
    b = TokenBucket(rate=100, burst_s=0.05)          # 100/s, 5 tokens of burst
    now, taken = 0, 0
    while now < SECOND:
        now = b.ready_at(1, now)
        b.take(1, now)
        taken += 1
    assert taken == pytest.approx(100 + 5, abs=1)


def test_a_request_bigger_than_the_bucket_waits_for_a_full_bucket_and_leaves_debt():
    b = TokenBucket(rate=1000, burst_s=0.001, min_capacity=1)      # capacity 1
    b.take(50, 0)                                                   # 49 in debt
    assert b.ready_at(1, 0) == 50 * MS


# --- the queue: shares, limits, work conservation -------------------------------------------------
@pytest.mark.parametrize("kind", ["hdd", "ssd"])
def test_shares_split_a_saturated_disk_two_to_one(kind):
    q = IoQueue("d", kind)
    ports = {"high": q.attach("high", shares=2000), "normal": q.attach("normal", shares=1000)}
    done = run_closed_loop(q, ports, SECOND if kind == "hdd" else SECOND // 10)
    assert done["high"] / done["normal"] == pytest.approx(2.0, rel=0.15)


def test_an_idle_neighbour_leaves_the_whole_disk_work_conserving():
    q = IoQueue("d", "ssd")
    q.attach("b", shares=4000)                       # attached but sends nothing
    alone = run_closed_loop(q, {"a": q.attach("a", shares=500)}, SECOND // 10)["a"]
    assert alone == 100 * MS // 107_812             # 107.8 us per 4 KiB request, back to back


def test_iops_limit_caps_one_vm_and_the_other_gets_the_rest():
    q = IoQueue("d", "ssd")
    ports = {"capped": q.attach("capped", iops_limit=200), "free": q.attach("free")}
    done = run_closed_loop(q, ports, SECOND // 2)
    assert done["capped"] == pytest.approx(200 / 2, rel=0.1)     # + a 50 ms burst
    assert done["free"] > 10 * done["capped"]


def test_bandwidth_limit_caps_bytes_per_second():
    q = IoQueue("d", "nvme")
    port = q.attach("vm", bandwidth_mib=2)
    done = run_closed_loop(q, {"vm": port}, SECOND // 2, size=64 * 1024)
    mib = done["vm"] * 64 / 1024
    assert mib == pytest.approx(1.0, rel=0.15)                   # 2 MiB/s for half a second


def test_the_same_requests_give_the_same_schedule():
    def run():
        q = IoQueue("d", "hdd")
        ports = {"a": q.attach("a", shares=1500), "b": q.attach("b", iops_limit=30)}
        run_closed_loop(q, ports, SECOND // 2, seed=7)
        return [(r, p.stats.reads, p.stats.latencies_ns[-5:]) for r, p in ports.items()]
    assert run() == run()


def test_a_request_from_a_vm_whose_clock_is_behind_is_served_when_the_queue_learns_of_it():
    q = IoQueue("d", "ssd")
    ahead, behind = q.attach("ahead"), q.attach("behind")
    got = []
    ahead.submit("read", 0, 4096, got.append, 5 * MS)
    ahead.advance(6 * MS)                       # the disk's timeline is at 6 ms now
    behind.submit("read", 0, 4096, got.append, 1 * MS)
    while len(got) < 2:
        behind.advance(behind.next_deadline())
    first, late = got
    assert first.vm == "ahead" and late.vm == "behind" and late.queued_ns == 1 * MS
    assert late.started_ns == first.done_ns == 5 * MS + 107_812     # after what was already decided


def test_a_completion_reaches_its_vm_only_at_its_own_guest_time():
    q = IoQueue("d", "ssd")
    a, b = q.attach("a"), q.attach("b")
    got = []
    a.submit("read", 0, 4096, got.append, 0)
    b.advance(10 * MS)                          # b's clock is far ahead: the disk finishes a's read
    assert got == [] and a.next_deadline() == 107812
    a.advance(107812)
    assert len(got) == 1


# --- events and the report ------------------------------------------------------------------------
def test_every_request_is_an_event_queued_started_done():
    bus = EventBus()
    rec = EventRecorder(bus, ["disk.queued", "disk.started", "disk.done"])
    q = IoQueue("hdd0", "hdd", bus.publish, bus.wants)
    port = q.attach("vm1")
    port.submit("write", 2048, 8192, lambda r: None, 1000)
    port.advance(port.next_deadline())
    assert rec.kinds() == ["disk.queued", "disk.started", "disk.done"]
    queued, started, done = rec.events
    assert queued.vm == "vm1" and queued.data == {"disk": "hdd0", "op": "write", "lba": 2048, "bytes": 8192,
                                                  "request": 1}
    assert queued.time_ns == started.time_ns == 1000 < done.time_ns
    assert done.data["latency_us"] == (done.time_ns - 1000) / 1000


def test_report_counts_bytes_latency_percentiles_and_queue_depth():
    q = IoQueue("d", "ssd")
    port = q.attach("vm")
    for i in range(4):
        port.submit("read", i * 8, 4096, lambda r: None, 0)
    port.submit("write", 0, 512, lambda r: None, 0)
    port.advance(10 * MS)
    r = port.report()
    assert (r["reads"], r["writes"], r["bytes_read"], r["bytes_written"]) == (4, 1, 16384, 512)
    assert r["queue_depth_max"] == 5
    assert r["latency_us_p50"] < r["latency_us_p99"] == pytest.approx(5 * 100 + 40, rel=0.05)


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([], 0.5)) == (50, 99, 0)
