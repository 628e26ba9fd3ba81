"""Co-simulation: the same guests on Unicorn and on KVM must do the same things.

Every shipped guest run (guests/expected/*.txt) boots on both backends; the serial
console and the way the VM stops must agree. Each run also records its events of the
kinds that do not depend on timing (``DETERMINISTIC``); when the backends disagree,
the failure names the first event where the two traces part. Then the smaller
scenarios: interrupt delivery in protected mode, an ATA write, a crashing KVM VM
next to running ones, bad input on the command line.

Two things are allowed to differ, because KVM runs in wall-clock time: console lines
the transcript marks ``{*}`` (timer tick counts), and the interleaving of two tasks'
output when the timer preempts one mid-line, so a KVM run whose console differs is
run again (up to ``ATTEMPTS`` times) before it counts as a divergence.

Where the host cannot run a guest on KVM (a paravirtual KVM: kvm_pvm) the test is
skipped with the precise reason, never passed silently. Skipped as a whole where
/dev/kvm does not open.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asm import assemble, disk_image, needs_as
from pmode import program
from qemu_ref import WILDCARD, expected_names, load_expected, normalise

from sandbox.api import Machine
from sandbox.backends.kvm.probe import probe
from sandbox.config.model import HostConfig, MachineConfig, VmConfig
from sandbox.guestbuild import IMAGES_DIR, write_command_line

KVM = probe()
pytestmark = [pytest.mark.kvm,
              pytest.mark.skipif(not KVM.usable, reason=f"/dev/kvm does not open: {KVM.problem()}")]

DETERMINISTIC = ("serial.tx", "exit.bios", "disk.read", "disk.write", "disk.flush", "vm.stopped")
ATTEMPTS = 3
KVM_SECONDS = 4.0        # the most one guest may take on KVM here; more is skipped, with the estimate
NS_PER_INSTRUCTION = 10  # Unicorn's deterministic clock: a 100 MIPS virtual CPU
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """One guest on one backend: what it printed, how it stopped, what it did."""
    backend: str
    console: str
    state: str
    status: int | None
    reason: str | None
    instructions: int
    host_limit: str | None
    trace: list[tuple] = field(default_factory=list)
    guest_seconds: float = 0.0

    @property
    def ending(self) -> tuple[str, int | None]:
        return self.state, self.status


def _event(ev) -> tuple:
    """An event without its time; for vm.stopped only state and status (the backends word
    a crash differently: Unicorn names each fault, KVM says "triple fault")."""
    data = ev.data if ev.kind != "vm.stopped" else {"state": ev.data["state"], "status": ev.data["status"]}
    return (ev.kind, tuple(sorted(data.items())))


def run_vm(vm: VmConfig, backend: str, timeout: float = 60) -> Run:
    m = Machine(MachineConfig(HostConfig(backend=backend, deterministic=backend == "unicorn"), [vm]))
    trace: list[tuple] = []
    m.events.subscribe(lambda ev: trace.append(_event(ev)), DETERMINISTIC)
    try:
        m.power_on()
        m.run(wall_timeout_s=timeout)
        v = m.vm()
        cpu = v.vcpus[0].backend
        return Run(backend, v.console.decode("latin-1"), v.state.value, v.exit_status, v.exit_reason,
                   cpu.instructions(), getattr(cpu, "host_limit", None), trace, m.now_ns / 1e9)
    finally:
        m.close()


def run_expected(name: str, backend: str, tmp_path: Path) -> Run:
    """The run guests/expected/<name>.txt describes, on a private copy of its disk."""
    exp = load_expected(name)
    disk = kernel = None
    if exp.disk:
        tmp_path.mkdir(parents=True, exist_ok=True)
        disk = tmp_path / exp.disk
        shutil.copy(IMAGES_DIR / exp.disk, disk)
        if exp.cmdline:
            write_command_line(disk, exp.cmdline)
    if exp.kernel:
        kernel = IMAGES_DIR / exp.kernel
    return run_vm(VmConfig(name=name, memory_mib=16, disk=disk, kernel=kernel, cmdline=exp.append or "",
                           input=exp.input), backend)


def first_divergence(a: Run, b: Run) -> str | None:
    """The first event where two traces differ, said in one line; None if they agree."""
    for i, (x, y) in enumerate(zip(a.trace, b.trace)):
        if x != y:
            return f"event {i}: {a.backend} {x} / {b.backend} {y}"
    if len(a.trace) != len(b.trace):
        longer, n = (a, len(b.trace)) if len(a.trace) > len(b.trace) else (b, len(a.trace))
        return f"event {n}: only {longer.backend} goes on, with {longer.trace[n]}"
    return None


def console_difference(a: Run, b: Run, transcript: str) -> str | None:
    """None if the consoles agree line by line, where a line the transcript marks {*} may
    differ in its {*} parts (both must still match it)."""
    wild = [re.compile(".*".join(re.escape(p) for p in line.split(WILDCARD)))
            for line in normalise(transcript).split("\n") if WILDCARD in line]
    left, right = normalise(a.console).split("\n"), normalise(b.console).split("\n")
    for number, (x, y) in enumerate(zip(left, right), start=1):
        if x != y and not any(w.fullmatch(x) and w.fullmatch(y) for w in wild):
            return f"console line {number}: {a.backend} {x!r} / {b.backend} {y!r}"
    if len(left) != len(right):
        return f"console: {a.backend} printed {len(left)} lines, {b.backend} {len(right)}"
    return None


@pytest.fixture(scope="module")
def emulated_mips() -> float | None:
    """How fast this host's KVM runs the code it emulates (kvm_pvm), in MIPS; None when
    guest code runs natively (VT-x/AMD-V)."""
    if not KVM.paravirtual:
        return None
    from sandbox.backends.kvm.kvm_bench import emulated_mips
    return max(emulated_mips() for _ in range(3))


def skip_if_too_slow(name: str, unicorn: Run, mips: float | None) -> None:
    """On kvm_pvm a guest takes its instructions at the emulator's speed, plus the time it
    spends idle (which passes in wall-clock time on KVM): skip what would take too long."""
    if mips is None:
        return
    idle = max(0.0, unicorn.guest_seconds - unicorn.instructions * NS_PER_INSTRUCTION / 1e9)
    seconds = unicorn.instructions / (mips * 1e6) + idle
    if seconds > KVM_SECONDS:
        pytest.skip(f"{name}: {unicorn.instructions / 1e6:.1f} M guest instructions and {idle:.1f} s idle; "
                    f"this host's KVM (kvm_pvm, no VT-x/AMD-V) emulates 32-bit guest code at "
                    f"{mips:.1f} MIPS, so ~{seconds:.0f} s, over the {KVM_SECONDS:.0f} s this test allows")


# --- every shipped guest -------------------------------------------------------------------------
@pytest.mark.parametrize("name", expected_names())
def test_shipped_guest_runs_the_same_on_kvm_and_unicorn(name, tmp_path, emulated_mips):
    exp = load_expected(name)
    unicorn = run_expected(name, "unicorn", tmp_path / "unicorn")
    skip_if_too_slow(name, unicorn, emulated_mips)
    for attempt in range(ATTEMPTS):
        kvm = run_expected(name, "kvm", tmp_path / f"kvm{attempt}")
        if kvm.host_limit is not None:
            pytest.skip(f"{name}: {kvm.reason}")
        problem = console_difference(unicorn, kvm, exp.transcript)
        if problem is None:
            break
    where = first_divergence(unicorn, kvm)
    assert kvm.ending == unicorn.ending, f"{name}: stopped as {kvm.ending} on KVM ({kvm.reason}), " \
                                         f"{unicorn.ending} on Unicorn; first divergence: {where}"
    assert problem is None, f"{name}: {problem}; first divergence: {where}"
    untimed = [(kind, data) for kind, data in unicorn.trace if kind != "serial.tx"]
    assert [e for e in kvm.trace if e[0] != "serial.tx"] == untimed, f"{name}: {where}"


def test_first_divergence_names_the_event_and_both_sides():
    a = Run("unicorn", "", "powered_off", 0, None, 0, None, [("serial.tx", (("byte", 65),))] * 2)
    b = Run("kvm", "", "powered_off", 0, None, 0, None, [("serial.tx", (("byte", 65),)), ("serial.tx", (("byte", 66),))])
    assert first_divergence(a, b) == "event 1: unicorn ('serial.tx', (('byte', 65),)) / kvm ('serial.tx', (('byte', 66),))"
    assert first_divergence(a, a) is None
    assert first_divergence(a, Run("kvm", "", "", 0, None, 0, None, a.trace[:1])).startswith("event 1: only unicorn")


# --- smaller scenarios, the same on both ------------------------------------------------------------
def boot_pm(tmp_path: Path, body: str, backend: str) -> Run:
    image = assemble(program(body), 0x7C00)
    img = tmp_path / f"pm-{backend}.img"
    img.write_bytes(image + bytes(32 * 512 - len(image)))
    return run_vm(VmConfig(name="pm", memory_mib=16, disk=img), backend, timeout=30)


PAGING = """
    mov $0x21000, %edi              # a page table at 0x21000 mapping the first 4 MiB 1:1
    mov $0x3, %eax
1:  mov %eax, (%edi)
    add $4, %edi
    add $0x1000, %eax
    cmp $0x22000, %edi
    jb 1b
    movl $0x21003, 0x20000          # the page directory at 0x20000
    mov $0x20000, %eax
    mov %eax, %cr3
    mov %cr0, %eax
    or $0x80000000, %eax
    mov %eax, %cr0                  # paging on
    mov $0x21, %al
    jmp exit_al
"""


def _pm_scenarios() -> dict[str, str]:
    import test_protected_mode as pm      # its guest programs; its tests stay where they are
    return {
        "int 0x30 through the IDT": """
    mov $0x30, %eax; mov $handler, %ebx; xor %ecx, %ecx; call set_gate; call load_idt
    mov $1, %eax
    int $0x30
    jmp exit_al
handler: add $41, %eax
    iret
""",
        "#DE handler sees the faulting EIP": """
    mov $0, %eax; mov $de, %ebx; xor %ecx, %ecx; call set_gate; call load_idt
    xor %ecx, %ecx; mov $7, %eax; xor %edx, %edx
fault: div %ecx
    jmp exit_al
de: cmpl $fault, (%esp)
    jne 1f
    mov $0x33, %al
    jmp exit_al
1:  mov $0x44, %al
    jmp exit_al
""",
        "PIT interrupts through a remapped PIC": """
    mov $0x11, %al; out %al, $0x20; out %al, $0xa0
    mov $0x20, %al; out %al, $0x21
    mov $0x28, %al; out %al, $0xa1
    mov $4, %al; out %al, $0x21
    mov $2, %al; out %al, $0xa1
    mov $1, %al; out %al, $0x21; out %al, $0xa1
    mov $0xfe, %al; out %al, $0x21
    mov $0xff, %al; out %al, $0xa1
    mov $0x34, %al; out %al, $0x43
    mov $1193 & 0xff, %al; out %al, $0x40
    mov $1193 >> 8, %al; out %al, $0x40
    mov $0x20, %eax; mov $tick, %ebx; xor %ecx, %ecx; call set_gate; call load_idt
    sti
1:  hlt
    cmpl $10, ticks
    jb 1b
    cli
    movb $10, %al
    jmp exit_al
tick: incl ticks
    push %eax
    mov $0x20, %al
    out %al, $0x20
    pop %eax
    iret
ticks: .long 0
""",
        "system call from ring 3 switches to the TSS stack": pm.RING3,
        "cli in ring 3 without a #GP handler: triple fault": pm.RING3.replace("mov $5, %ebx\n    int $0x80", "cli"),
        "paging on: identity-mapped 4 MiB": PAGING,
        "an empty IDT: triple fault": """
    lidt bad_idtr
    int $3
bad_idtr: .word 0
    .long 0
""",
    }


@needs_as
@pytest.mark.parametrize("scenario", list(_pm_scenarios()))
def test_protected_mode_scenario_ends_the_same(scenario, tmp_path):
    body = _pm_scenarios()[scenario]
    unicorn = boot_pm(tmp_path, body, "unicorn")
    kvm = boot_pm(tmp_path, body, "kvm")
    if kvm.host_limit is not None:
        pytest.skip(f"{scenario}: {kvm.reason}")
    assert kvm.ending == unicorn.ending, (f"{scenario}: KVM {kvm.ending} ({kvm.reason}), Unicorn "
                                          f"{unicorn.ending} ({unicorn.reason})")


@needs_as
@pytest.mark.skipif(not KVM.paravirtual, reason="32-bit paging runs on VT-x/AMD-V; the limit is kvm_pvm's")
def test_paging_on_kvm_pvm_stops_with_the_reason(tmp_path):
    kvm = boot_pm(tmp_path, PAGING, "kvm")
    assert kvm.state == "crashed" and kvm.host_limit == "paging"
    assert kvm.reason.startswith("kvm_pvm cannot run 32-bit paging") and "--backend unicorn" in kvm.reason


@needs_as
def test_ata_write_lands_in_the_image_on_both(tmp_path):
    from test_ata_guest import WRITE_LBA_2
    images = {}
    for backend in ("unicorn", "kvm"):
        img = disk_image(tmp_path / f"{backend}.img", WRITE_LBA_2, extra=bytes(512 * 7))
        run = run_vm(VmConfig(name="ata", memory_mib=16, disk=img), backend, timeout=30)
        assert run.status == (0x50 << 1) | 1, f"{backend}: {run.reason}"
        images[backend] = img.read_bytes()
    assert images["kvm"] == images["unicorn"]
    assert images["kvm"][1024:1536] == b"ATA!" * 128


# --- the command line, with backend = "kvm" ----------------------------------------------------------
def sandbox(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sandbox", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd or ROOT)


def test_a_crashing_kvm_vm_stops_alone(tmp_path):
    """[host] backend = "kvm": a triple fault in one VM; the others run to the end."""
    for image in ("hello.img", "crash.img", "tinyos.img"):
        shutil.copy(IMAGES_DIR / image, tmp_path / image)
    (tmp_path / "machine.toml").write_text("""
[host]
backend = "kvm"
cpus = 1
memory_mib = 64
[[vm]]
name = "crashy"
disk = "crash.img"
[[vm]]
name = "os"
disk = "tinyos.img"
input = "uptime\\npoweroff\\n"
[[vm]]
name = "hi"
disk = "hello.img"
""")
    r = sandbox("run", str(tmp_path / "machine.toml"), "--timeout", "60")
    assert "[crashy] crash:" in r.stdout
    assert "[os] tinyos: powering off" in r.stdout
    assert "[hi] Hello from the guest!" in r.stdout
    assert "VM crashy crashed: triple fault" in r.stderr
    assert r.returncode == 1


def test_backend_flag_runs_a_kernel_on_kvm():
    r = sandbox("run", "--backend", "kvm", "--kernel", str(IMAGES_DIR / "cpuhog.elf"),
                "--cmdline", "burn=1000 reports=2")
    assert r.returncode == 0, r.stderr
    assert "cpuhog: 2 checksum=" in r.stdout and "cpuhog: done, powering off" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["run", "--backend", "kvm", "no/such/disk.img"], "not found"),
    (["run", "--backend", "kvm", "--kernel", "no/such/kernel.elf"], "not found"),
    (["run", "--backend", "kvm", "--memory", "1", str(IMAGES_DIR / "hello.img")], "--memory"),
    (["run", "--backend", "qemu", str(IMAGES_DIR / "hello.img")], "invalid choice"),
])
def test_bad_input_is_one_line_as_on_unicorn(args, message):
    r = sandbox(*args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 or "usage:" in r.stderr


def test_kvm_unavailable_is_one_line(monkeypatch, capsys):
    from sandbox.backends.kvm import vm as kvm_vm
    from sandbox.backends.kvm.probe import KvmProbe
    from sandbox.cli.main import main
    monkeypatch.setattr(kvm_vm, "probe", lambda: KvmProbe(device="/dev/kvm", present=False))
    assert main(["run", "--backend", "kvm", str(IMAGES_DIR / "hello.img")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "KVM backend unavailable" in err and "--backend unicorn" in err
