"""The keys a machine config may contain: one table per section, each key with its
type, default, check and a line of help. Later features add rows here, nowhere else."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Key:
    types: tuple[type, ...]
    description: str
    check: Callable[[Any], str | None] | None = None     # returns a complaint, or None
    path: bool = False                                   # resolved relative to the file


def _range(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}"


def _choice(*options: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in options else f"must be one of {', '.join(options)}"


def _name(v: str) -> str | None:
    ok = v and all(c.isalnum() or c in "-_." for c in v)
    return None if ok else "must be letters, digits, '-', '_' or '.'"


HOST_KEYS: dict[str, Key] = {
    "cpus": Key((int,), "Physical CPUs the host has.", _range(1, 64)),
    "memory_mib": Key((int,), "Host RAM in MiB (the frame pool VMs draw from).", _range(1, 4096)),
    "backend": Key((str,), "Engine that runs guest code: unicorn or kvm.", _choice("unicorn", "kvm")),
    "deterministic": Key((bool,), "Guest time from retired instructions (true) or wall clock (false)."),
    "quantum_ms": Key((int, float), "Scheduler time slice in milliseconds of guest time.",
                      lambda v: None if 0.01 <= v <= 1000 else "must be between 0.01 and 1000"),
    # Memory virtualization (sandbox/hypervisor/memory_manager.py and its siblings).
    "page_sharing": Key((bool, str), "Transparent page sharing: true (across VMs), \"vm\" (only within "
                        "each VM: salting), false (off).", lambda v: None if v in (True, False, "vm")
                        else "must be true, false or \"vm\""),
    "pages_to_scan": Key((int,), "Pages the sharing scanner examines per scan period (KSM's pages_to_scan).",
                         _range(1, 1_000_000)),
    "scan_period_ms": Key((int, float), "Guest time between two scanner batches (KSM's sleep_millisecs).",
                          lambda v: None if 0.1 <= v <= 10_000 else "must be between 0.1 and 10000"),
    "swap_file": Key((str,), "Hypervisor swap file, relative to this file (default: an unnamed "
                     "temporary file).", path=True),
    # CPU virtualization (sandbox/hypervisor/scheduler.py and policies/).
    "scheduler": Key((str,), "vCPU scheduling policy: round_robin, proportional, credit, or "
                     "\"module:Class\" for your own.", lambda v: None if v in ("round_robin", "proportional",
                     "credit") or ":" in v else "must be round_robin, proportional, credit or \"module:Class\""),
    # Storage virtualization (sandbox/storage/host_disks.py, io_queue.py, latency.py).
    "disks": Key((list,), "The host's physical disks VM disks live on: [{ name = \"hdd0\", kind = "
                 "\"hdd\" }, ...], kind hdd, ssd, nvme or ideal (default: one ideal disk).", lambda v: _disks(v)),
}

VM_KEYS: dict[str, Key] = {
    "name": Key((str,), "The VM's name (unique on the host).", _name),
    "vcpus": Key((int,), "Virtual CPUs.", _range(1, 16)),
    "memory_mib": Key((int,), "Guest RAM in MiB.", _range(2, 2048)),
    "disk": Key((str,), "Boot disk image (raw or qcow2), relative to this file.", path=True),
    "kernel": Key((str,), "Multiboot kernel (ELF) to boot directly, relative to this file.", path=True),
    "cmdline": Key((str,), "Kernel command line (with kernel)."),
    "readonly": Key((bool,), "Attach the disk read-only."),
    "input": Key((str,), "Text fed to the guest's serial port at power-on (\\n escapes allowed)."),
    "mem_reservation_mib": Key((int,), "Guest RAM guaranteed to this VM: never reclaimed.", _range(0, 2048)),
    "mem_limit_mib": Key((int,), "Most guest RAM this VM may have resident at once (the rest is "
                         "swapped).", _range(1, 2048)),
    "mem_shares": Key((str, int), "Claim on host memory under contention: low, normal, high "
                      "(5/10/20 per MiB) or a number.", lambda v: None if v in ("low", "normal", "high")
                      or (isinstance(v, int) and 1 <= v <= 1_000_000) else "must be low, normal, high "
                      "or a number from 1 to 1000000"),
    "balloon": Key((bool,), "The guest runs the sandbox balloon driver: the hypervisor may ask it "
                   "for pages."),
    "cpu_shares": Key((str, int), "Claim on CPU under contention (proportional): low, normal, high "
                      "(500/1000/2000 per vCPU) or a number for the whole VM.", lambda v: None
                      if v in ("low", "normal", "high") or (isinstance(v, int) and 1 <= v <= 1_000_000)
                      else "must be low, normal, high or a number from 1 to 1000000"),
    "cpu_reservation": Key((int, float), "Percent of one physical CPU guaranteed to the VM "
                           "(proportional; checked by admission control).", _range(0, 1600)),
    "cpu_limit": Key((int, float), "Percent of one physical CPU the VM may never exceed (proportional).",
                     lambda v: None if 0 < v <= 1600 else "must be more than 0 and at most 1600"),
    "cpu_weight": Key((int,), "Xen credit-scheduler weight (default 256).", _range(1, 65535)),
    "cpu_cap": Key((int, float), "Xen cap: percent of one physical CPU, 0 = no cap (credit).",
                   _range(0, 1600)),
    "nic": Key((dict,), "A virtio-net card: { switch = NAME, mac, vlan or trunk, native_vlan, "
               "rate_limit_mbit, ip, gateway } (see NIC_KEYS)."),
    "disk_bus": Key((str,), "How the guest reaches its disk: ata (emulated IDE) or virtio (paravirtual "
                    "virtio-blk at 0xD0000000).", _choice("ata", "virtio")),
    "host_disk": Key((str,), "The [host] disk this VM's disk lives on (default: the first).", _name),
    "io_shares": Key((str, int), "Claim on its physical disk under contention: low, normal, high "
                     "(500/1000/2000) or a number.", lambda v: None if v in ("low", "normal", "high")
                     or (isinstance(v, int) and 1 <= v <= 1_000_000) else "must be low, normal, high "
                     "or a number from 1 to 1000000"),
    "iops_limit": Key((int,), "Most disk I/Os per second of guest time (token bucket).", _range(1, 10_000_000)),
    "bandwidth_limit_mib": Key((int, float), "Most disk MiB per second of guest time (token bucket).",
                               lambda v: None if 0.001 <= v <= 1_000_000 else "must be between 0.001 and 1000000"),
}


def _disks(v: list) -> str | None:
    from sandbox.storage.latency import KINDS  # noqa: PLC0415
    names: list[str] = []
    for i, d in enumerate(v, start=1):
        if not isinstance(d, dict) or set(d) - {"name", "kind"} or not {"name", "kind"} <= set(d):
            return f"entry {i} must be {{ name = NAME, kind = KIND }} and nothing else"
        if not isinstance(d["name"], str) or _name(d["name"]):
            return f"entry {i}: name must be letters, digits, '-', '_' or '.'"
        if d["kind"] not in KINDS:
            return f"entry {i}: kind must be one of {', '.join(KINDS)}"
        if d["name"] in names:
            return f"names two disks '{d['name']}'"
        names.append(d["name"])
    return None


# Networking (sandbox/net/): the [[switch]] section and the keys of a VM's nic = { ... }.
def _mac(v: str) -> str | None:
    parts = v.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        return "is not a MAC address (like 52:54:00:12:34:56)"
    return "is a group (multicast) address: a NIC needs a unicast one" if int(parts[0], 16) & 1 else None


def _ipv4(v: str, prefix: bool = False) -> str | None:
    import ipaddress   # noqa: PLC0415
    try:
        (ipaddress.IPv4Interface if prefix else ipaddress.IPv4Address)(v)
    except ValueError:
        return "is not an IPv4 address" + (" with a prefix (like 10.0.0.1/24)" if prefix else "")
    return None if not prefix or "/" in v else "needs a prefix length (like 10.0.0.1/24)"


def _vlans(v: list) -> str | None:
    ok = v and all(isinstance(x, int) and not isinstance(x, bool) and 1 <= x <= 4094 for x in v)
    return None if ok else "must be a list of VLAN ids from 1 to 4094"


SWITCH_KEYS: dict[str, Key] = {
    "name": Key((str,), "The switch's name (unique on the host).", _name),
    "ports": Key((int,), "How many ports it has (one per NIC; the mirror's included).", _range(1, 64)),
    "mirror_to": Key((str,), "A VM on this switch whose port gets a copy of every frame (a SPAN port).", _name),
    "ageing_s": Key((int, float), "Guest seconds a MAC table entry lives without traffic (Linux: 300).",
                    lambda v: None if 0.001 <= v <= 1_000_000 else "must be between 0.001 and 1000000"),
    "latency_us": Key((int, float), "Guest microseconds a frame takes from one NIC to another.",
                      lambda v: None if 0 <= v <= 1_000_000 else "must be between 0 and 1000000"),
}

NIC_KEYS: dict[str, Key] = {
    "switch": Key((str,), "The [[switch]] this NIC is plugged into.", _name),
    "mac": Key((str,), "MAC address (default: 52:54:00 and three bytes derived from the VM's name).", _mac),
    "vlan": Key((int,), "An access port in this VLAN (default 1).", _range(1, 4094)),
    "trunk": Key((list,), "An 802.1Q trunk port carrying these VLANs, tagged.", _vlans),
    "native_vlan": Key((int,), "A trunk's untagged VLAN (default none: untagged frames are dropped).",
                       _range(1, 4094)),
    "rate_limit_mbit": Key((int, float), "Token-bucket limit on what the VM sends, Mbit/s of guest time.",
                           lambda v: None if 0.001 <= v <= 100_000 else "must be between 0.001 and 100000"),
    "ip": Key((str,), "The guest's IPv4 address and prefix, given to it as ip= on the kernel command line.",
              lambda v: _ipv4(v, prefix=True)),
    "gateway": Key((str,), "The guest's default gateway, given as gw= on the kernel command line.", _ipv4),
}
