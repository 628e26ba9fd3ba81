"""What the views show, copied out of the machine by the worker thread.

The GUI thread never touches the machine: reading registers or guest memory goes
into the engine (Unicorn) and may even allocate frames. So the worker copies what
the views need into immutable ``Snapshot`` objects, ~30 times a second, and the GUI
draws the newest one. The costly parts (the host frame map, per-VM memory counts)
are refreshed twice a second; the inspected vCPU's registers and code (and its
screen, while the inspector shows it) are copied only for the one VM it shows.
"""
from __future__ import annotations

import time
from itertools import repeat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.vm.vcpu import VCpuState

if TYPE_CHECKING:
    from sandbox.api import Machine
    from sandbox.vm.machine import VirtualMachine

FREE, SHARED, FOREIGN = 0, 255, 254     # codes in RamView.owners besides VM numbers 1..n
CODE_BEFORE, CODE_AFTER = 32, 64        # bytes of code copied around the instruction pointer
RAM_PERIOD_S = 0.5                      # the host frame map, twice a second
REPORT_PERIOD_S = 0.25                  # the run report (memory, ready time, entitlement), 4 times a second
CR0_PE, CR0_PG = 1, 1 << 31


@dataclass(frozen=True)
class VCpuView:
    index: int
    state: str
    run_ns: int
    ready_ns: int
    instructions: int
    interrupts: int
    exits: dict[str, int]


@dataclass(frozen=True)
class VmView:
    name: str
    state: str
    exit_reason: str | None
    memory_mib: int
    vcpus: tuple[VCpuView, ...]
    exits: dict[str, int]
    memory: dict[str, int]         # MEMORY_FIELDS in metrics.py: resident, shared, swapped, ...
    disk: str | None
    disk_format: str | None
    kernel: str | None
    nic: str | None
    time_ns: int
    entitled: float                # physical CPUs this VM is entitled to (the scheduler's, or a fair share)
    ready_ns: int                  # runnable but waiting for a physical CPU, as of ``report_ns``
    report_ns: int                 # guest time of the run report the report-based fields come from
    last_line: str                 # the guest's last line of console output
    console_bytes: int


@dataclass(frozen=True)
class PcpuView:
    index: int
    busy_ns: int
    vcpu: str | None               # "vm/vcpuN" it runs (last scheduled, still runnable)


@dataclass(frozen=True)
class RamView:
    frames: int
    free: int
    owners: bytes                  # one code per host frame: FREE, SHARED, FOREIGN or VM number
    names: tuple[str, ...]         # VM number n (1-based) -> name


@dataclass(frozen=True)
class Detail:
    vm: str
    vcpu: int
    regs: dict[str, int]
    mode: str                      # real, protected or paging
    pc: int                        # linear address of the next instruction
    code: bytes
    code_base: int
    instructions: int
    screen: tuple[tuple[tuple[str, int], ...], ...] | None
    cursor: tuple[int, int]
    palette: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class Snapshot:
    seq: int
    wall: float
    now_ns: int
    speed: str
    backend: str
    deterministic: bool
    quantum_ns: int
    vms: tuple[VmView, ...]
    pcpus: tuple[PcpuView, ...]
    runqueue: tuple[str, ...]
    ram: RamView
    memory_manager: dict[str, int]
    detail: Detail | None = None
    breakpoints: tuple[str, ...] = ()
    stopped_at: str | None = None  # the breakpoint hit that paused the machine
    commands: int = 0              # GUI commands the worker had run when it took this
    extra: dict[str, Any] = field(default_factory=dict)

    def vm(self, name: str) -> VmView | None:
        return next((v for v in self.vms if v.name == name), None)


def entitlements(machine: "Machine") -> dict[str, float]:
    """The fallback when the run report has no ``entitled_percent``: a fair share of
    the physical CPUs among running VMs, 1000 shares per vCPU, a VM never getting
    more than one physical CPU per vCPU (water-filling)."""
    running = [vm for vm in machine.vms.values() if vm.state.value == "running" and vm.vcpus]
    weight = {vm.name: 1000.0 * len(vm.vcpus) for vm in running}
    cap = {vm.name: float(len(vm.vcpus)) for vm in running}
    left, capacity, share = set(weight), float(len(machine.hypervisor.host.cpus)), {}
    while left:
        total = sum(weight[n] for n in left)
        capped = {n for n in left if capacity * weight[n] / total >= cap[n]}
        if not capped:
            share.update({n: capacity * weight[n] / total for n in left})
            break
        for n in capped:
            share[n] = cap[n]
            capacity -= cap[n]
        left -= capped
    return share


def _last_line(console: bytearray) -> str:
    tail = bytes(console[-240:]).decode("latin-1").replace("\r", "")
    lines = [ln for ln in tail.split("\n") if ln.strip()]
    return lines[-1].strip()[:60] if lines else ""


def _memory_counts(machine: "Machine", vm: "VirtualMachine", report: dict[str, Any]) -> dict[str, int]:
    from gui.metrics import MEMORY_FIELDS   # noqa: PLC0415 (metrics imports this module)
    return {f.name: f.read(machine, vm, report) for f in MEMORY_FIELDS}


class SnapshotTaker:
    """Lives in the worker thread; ``take()`` copies the machine's state."""

    def __init__(self, machine: "Machine") -> None:
        self.machine = machine
        self.seq = 0
        self._ram: RamView | None = None
        self._memory: dict[str, dict[str, int]] = {}
        self._ram_at = 0.0
        self._report: dict[str, dict[str, Any]] = {}
        self._report_ns = 0
        self._report_at = 0.0
        self._on_pcpu: dict[int, tuple[str, int, int]] = {}    # pcpu -> (vm, vcpu, event seq)
        machine.events.subscribe(self._on_switch, ["sched.switch"])

    def _on_switch(self, ev) -> None:
        self._on_pcpu[ev.data["pcpu"]] = (ev.vm, ev.data["vcpu"], ev.seq)

    def take(self, speed: str, inspect: tuple[str, int, bool] | None, breakpoints: tuple[str, ...] = (),
             stopped_at: str | None = None, force_ram: bool = False, between_rounds: bool = True,
             commands: int = 0) -> Snapshot:
        """``between_rounds``: False when called from inside a scheduler round (an event
        subscriber); then nothing that may change the machine's state is called."""
        m = self.machine
        hv = m.hypervisor
        now = time.monotonic()
        if force_ram or self._ram is None or now - self._ram_at >= RAM_PERIOD_S:
            self._ram_at = now
            self._ram = self._ram_view()
        if between_rounds and now - self._report_at >= REPORT_PERIOD_S:
            self._report_at = now
            self._report = {v["name"]: v for v in m.report()["vms"]}
            self._report_ns = m.now_ns
            self._memory = {vm.name: _memory_counts(m, vm, self._report.get(vm.name, {})) for vm in m.vms.values()}
        elif force_ram:                 # fresh counts without the report (it may settle the scheduler)
            self._memory = {vm.name: _memory_counts(m, vm, {}) for vm in m.vms.values()}
        if between_rounds or not getattr(self, "_entitled", None):
            try:        # what the scheduler's policy says each VM deserves (percent of a pCPU)
                self._entitled = {n: p / 100.0 for n, p in hv.scheduler.entitlements().items()}
            except Exception:  # noqa: BLE001 - a broken student policy: show the fair-share fallback
                self._entitled = {}
        shares = self._entitled or entitlements(m)
        vms = tuple(self._vm_view(vm, shares.get(vm.name, 0.0)) for vm in m.vms.values())
        pcpus = tuple(PcpuView(c.index, c.busy_ns, self._pcpu_vcpu(c.index)) for c in hv.host.cpus)
        runqueue = tuple(f"{vm.name}/vcpu{c.index}" for vm in m.vms.values() if vm.active
                         for c in vm.vcpus if c.state == VCpuState.RUNNABLE)
        mm = hv.memory_manager
        counters = {"cow_faults": sum(mm.cow_faults.values()), "frames_free": hv.host.ram.free_count,
                    "frames_total": hv.host.ram.frames}
        detail = None
        if inspect is not None and inspect[0] in m.vms:
            detail = self._detail(m.vms[inspect[0]], inspect[1], inspect[2] if len(inspect) > 2 else True)
        host = hv.host
        extra = {"disks": tuple(f"{d.name} ({d.kind})" for d in host.disks),
                 "nics": tuple(f"{n.name}  {n.mac}" for n in host.nics)}
        self.seq += 1
        return Snapshot(self.seq, now, m.now_ns, speed, hv.backend_name, hv.deterministic, hv.quantum_ns,
                        vms, pcpus, runqueue, self._ram, counters, detail, breakpoints, stopped_at,
                        commands, extra)

    def _pcpu_vcpu(self, index: int) -> str | None:
        last = self._on_pcpu.get(index)
        if last is None or last[0] not in self.machine.vms:
            return None
        if any(o[:2] == last[:2] and o[2] > last[2] for o in self._on_pcpu.values()):
            return None                 # it moved to another physical CPU since
        vm = self.machine.vms[last[0]]
        if not vm.active or last[1] >= len(vm.vcpus) or not vm.vcpus[last[1]].runnable:
            return None
        return f"{last[0]}/vcpu{last[1]}"

    def _vm_view(self, vm: "VirtualMachine", entitled: float) -> VmView:
        vcpus = tuple(VCpuView(c.index, c.state.value, c.stats.run_ns, c.stats.ready_ns,
                               c.stats.instructions, c.stats.interrupts, dict(c.stats.exits)) for c in vm.vcpus)
        cfg = vm.config
        disk = vm.disk
        exits = dict(vm.exit_counts)
        halts = sum(c.stats.exits.get("hlt", 0) for c in vm.vcpus)
        if halts:
            exits["exit.hlt"] = halts
        cpu = self._report.get(vm.name, {}).get("cpu", {})
        if cpu.get("entitled_percent") is not None:          # the scheduler's own entitlement
            entitled = cpu["entitled_percent"] / 100
        ready = cpu.get("ready_seconds")
        ready_ns = int(ready * 1e9) if ready is not None else sum(c.ready_ns for c in vcpus)
        nic = getattr(cfg, "nic", None)
        return VmView(vm.name, vm.state.value, vm.exit_reason, cfg.memory_mib, vcpus, exits,
                      self._memory.get(vm.name, {}),
                      str(cfg.disk) if cfg.disk else None, getattr(disk, "format", None) if disk else None,
                      str(cfg.kernel) if cfg.kernel else None,
                      f"virtio-net on switch {nic.switch}" if nic is not None else None,
                      vm.clock.now(), entitled, ready_ns, self._report_ns if cpu else self.machine.now_ns,
                      _last_line(vm.console), len(vm.console))

    def _ram_view(self) -> RamView:
        pool = self.machine.hypervisor.host.ram
        names = tuple(self.machine.vms)
        code: dict[str | None, int] = {name: i + 1 for i, name in enumerate(names[:250])}
        code[None] = FREE
        owners = bytearray(map(code.get, pool.owner, repeat(FOREIGN, pool.frames)))  # FOREIGN: "<shared>", ...
        if max(pool.refcount, default=0) > 1:             # shared frames are rare: patch them in
            for frame, refs in enumerate(pool.refcount):
                if refs > 1:
                    owners[frame] = SHARED
        return RamView(pool.frames, pool.free_count, bytes(owners), names)

    def _detail(self, vm: "VirtualMachine", index: int, screen_too: bool) -> Detail | None:
        if index >= len(vm.vcpus):
            return None
        be = vm.vcpus[index].backend
        regs = be.get_regs()
        cr0 = regs.get("cr0", 0)
        mode = "real" if not cr0 & CR0_PE else "paging" if cr0 & CR0_PG else "protected"
        try:
            pc = be.linear_pc()
        except Exception:              # noqa: BLE001 (a half-built VM: fall back to EIP)
            pc = regs.get("eip", 0)
        code_base, code = pc, b""
        for start in (max(0, pc - CODE_BEFORE), pc):
            try:
                code, code_base = be.read_linear(start, pc + CODE_AFTER - start), start
                break
            except Exception:          # noqa: BLE001 (unmapped code: show what we can)
                continue
        screen, cursor, palette = None, (0, 0), ()
        vga = vm.devices.get("vga")
        if vga is not None and vm.memory is not None and screen_too:   # the costliest part: on request
            screen = tuple(tuple(row) for row in vga.cells())
            cursor = vga.cursor()
            palette = tuple(vga.colour(i) for i in range(16))
        return Detail(vm.name, index, regs, mode, pc, code, code_base, be.instructions(),
                      screen, cursor, palette)
