"""Tiny guests for the scheduler tests, and a helper that builds a machine from them.

Each guest is a boot sector assembled with GNU as (tests/asm.py):

* ``HOG``: a compute loop that never halts, interrupts off;
* ``IDLE``: ``sti; hlt`` forever, woken by the BIOS timer (18.2 Hz);
* ``ticker(hz, burn)``: programs the PIT to ``hz``, then on every tick burns ``burn``
  loop iterations and halts again (an interactive/I-O-like VM);
* ``SMP_SPIN``: starts vCPU 1 through the start-up hypercall; both vCPUs then loop.

The tests in this file check that the guests do what the others assume.
"""
from __future__ import annotations

from pathlib import Path

from asm import assemble, disk_image, needs_as
from pmode import program

from sandbox.api import Machine

pytestmark = needs_as

HOG = """
    cli
1:  inc %eax
    add %eax, %ebx
    jmp 1b
"""

IDLE = """
    sti
1:  hlt
    jmp 1b
"""


def ticker(hz: int, burn: int) -> str:
    divisor = round(1_193_182 / hz)
    return f"""
    cli
    mov $0x34, %al
    out %al, $0x43
    mov ${divisor & 0xFF}, %al
    out %al, $0x40
    mov ${divisor >> 8}, %al
    out %al, $0x40
    sti
1:  hlt
    mov ${burn}, %cx
2:  loop 2b
    jmp 1b
"""


# Hypercall 0x20 (start_vcpu): EBX = vCPU, ECX = EIP, ESI = ESP, EDI = the lgdt operand.
START_AP = """
    mov $0x20, %eax
    mov $1, %ebx
    mov $ap_entry, %ecx
    mov $0x70000, %esi
    mov $gdtr, %edi
    mov $0x0d00, %dx
    out %eax, %dx
"""

# Shared variables live on their own page: a store into a page of translated code
# makes the engine retranslate it (self-modifying code), which is slow.
DATA = """
.set bsp_count, 0x60000
.set ap_count, 0x60004
.set ap_index, 0x60008
.set ap_ready, 0x6000c
.set ap_woke, 0x60010
"""

SMP_SPIN = DATA + START_AP + """
1:  incl bsp_count
    jmp 1b
ap_entry:
    mov %eax, ap_index
2:  incl ap_count
    jmp 2b
"""


def smp_image(path: Path, body: str) -> Path:
    image = assemble(program(body), 0x7C00)
    path.write_bytes(image + bytes(32 * 512 - len(image)))
    return path


def build(tmp_path: Path, vms: list[dict], cpus: int = 1, scheduler: str = "proportional",
          host: str = "", events=None) -> Machine:
    """``vms``: dicts with ``name``, ``guest`` (assembly, or ("smp", body)) and any config keys."""
    lines = ["[host]", f"cpus = {cpus}", f'scheduler = "{scheduler}"', host]
    for vm in vms:
        vm = dict(vm)
        name, guest = vm.pop("name"), vm.pop("guest")
        img = tmp_path / f"{name}.img"
        if isinstance(guest, tuple):
            smp_image(img, guest[1])
        else:
            disk_image(img, guest)
        lines += ["[[vm]]", f'name = "{name}"', f'disk = "{img.name}"', "memory_mib = 2", "readonly = true"]
        lines += [f"{k} = {v!r}".replace("'", '"') for k, v in vm.items()]
    toml = tmp_path / "machine.toml"
    toml.write_text("\n".join(lines) + "\n")
    return Machine(toml, events)


def cpu(machine: Machine) -> dict[str, dict]:
    return {vm["name"]: vm["cpu"] for vm in machine.report()["vms"]}


# --- the guests themselves ------------------------------------------------------------------------
def test_hog_never_halts_and_idle_always_halts(tmp_path):
    m = build(tmp_path, [{"name": "hog", "guest": HOG}, {"name": "idle", "guest": IDLE}])
    m.power_on()
    m.run(until_ns=50_000_000)
    c = cpu(m)
    assert c["hog"]["run_seconds"] > 0.049
    assert c["idle"]["run_seconds"] < 0.0005


def test_smp_guest_runs_code_on_both_vcpus(tmp_path):
    m = build(tmp_path, [{"name": "smp", "guest": ("smp", SMP_SPIN), "vcpus": 2}])
    m.power_on()
    m.run(until_ns=20_000_000)
    c = cpu(m)["smp"]
    assert [v["run_seconds"] > 0.005 for v in c["per_vcpu"]] == [True, True]
