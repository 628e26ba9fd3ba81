"""A virtual machine: vCPUs, guest memory, virtual devices and the guest, as one object.

``power_on`` is the seed's workflow made explicit: allocate vCPUs, allocate RAM, open
the virtual disk, have the firmware read the boot sector (or load the kernel), start
the guest, attach the network, run. Each step publishes its event.

``run_vcpu`` runs one vCPU until a guest-time deadline, delivering interrupts and
reacting to exits through the ``EXIT_ACTIONS`` table.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Callable

from sandbox.devices.base import DeviceContext, IrqLine
from sandbox.devices.registry import PC_DEVICES, VIRTIO_DEVICES, MachineParts
from sandbox.devices.virtio.mmio import WINDOW, slot
from sandbox.errors import SandboxError
from sandbox.firmware.bios import Firmware
from sandbox.firmware.multiboot import boot_multiboot
from sandbox.hypervisor.bus import Bus
from sandbox.hypervisor.clock import NS_PER_INSTRUCTION, VmClock
from sandbox.hypervisor.dispatcher import dispatch_io, dispatch_mmio
from sandbox.net.netconfig import kernel_cmdline
from sandbox.storage import open_image
from sandbox.vm.exits import Exit
from sandbox.vm.interrupt_delivery import TripleFault
from sandbox.vm.vcpu import VCpu, VCpuState

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend
    from sandbox.config.model import VmConfig
    from sandbox.hypervisor.hypervisor import Hypervisor
    from sandbox.storage.base import BlockImage
    from sandbox.storage.disk_port import DiskPort
    from sandbox.vm.exits import IoExit, MmioExit


class VmState(str, enum.Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    POWERED_OFF = "powered_off"
    CRASHED = "crashed"
    TIMED_OUT = "timed_out"


class VirtualMachine:
    def __init__(self, config: "VmConfig", hypervisor: "Hypervisor") -> None:
        self.config = config
        self.name = config.name
        self.hv = hypervisor
        self.clock = VmClock(hypervisor.deterministic)
        self.state = VmState.CREATED
        self.exit_reason: str | None = None
        self.exit_status: int | None = None
        self.console = bytearray()
        self.console_sinks: list[Callable[[bytes], None]] = []
        self.vcpus: list[VCpu] = []
        self.devices: dict[str, Any] = {}
        self.disk: "BlockImage | None" = None
        self.disk_port: "DiskPort | None" = None    # the disk's place in its physical disk's I/O queue
        self.memory = None  # type: ignore[assignment]
        self.exit_counts: dict[str, int] = {}
        self._slice_end: int | None = None                 # guest time the running slice ends
        self._pending: tuple[str, Any] | None = None     # ("off", (reason, status)) / ("reset", None)
        self.io_bus = Bus("io", on_unclaimed=self._unclaimed_port)
        self.mmio_bus = Bus("mmio", on_unclaimed=self._unclaimed_mmio)
        self.firmware = Firmware(self)
        self.log_lines: list[str] = []
        self.hv.events.publish("vm.created", vm=self.name, time_ns=self.clock.now(),
                               vcpus=config.vcpus, memory_mib=config.memory_mib)

    # --- events ---------------------------------------------------------------------------
    def publish(self, kind: str, **data: Any) -> None:
        self.hv.events.publish(kind, vm=self.name, time_ns=self.clock.now(), **data)

    def traced(self, kind: str) -> bool:
        return self.hv.events.wants(kind)

    def count_exit(self, kind: str) -> None:
        self.exit_counts[kind] = self.exit_counts.get(kind, 0) + 1

    def log(self, text: str) -> None:
        self.log_lines.append(text)

    # --- power-on workflow ------------------------------------------------------------------
    def power_on(self) -> None:
        cfg = self.config
        self.memory = self.hv.memory_manager.create(self.name, cfg.memory_mib << 20, self.mmio_bus)
        for i in range(cfg.vcpus):
            self.vcpus.append(VCpu(self.name, i, self.hv.make_backend(self, i)))
        self.publish("power.allocate_vcpus", count=cfg.vcpus, backend=self.hv.backend_name)
        self.publish("power.allocate_ram", memory_mib=cfg.memory_mib, frames=self.memory.frames,
                     note="host frames are given on first touch")
        if cfg.disk is not None:
            self.disk = open_image(str(cfg.disk), readonly=cfg.readonly)
            self.disk_port = self.hv.attach_disk(cfg)
            self.publish("power.open_disk", path=str(cfg.disk), format=self.disk.format,
                         size=self.disk.size(), readonly=self.disk.readonly, bus=cfg.disk_bus,
                         host_disk=self.disk_port.queue.name, host_disk_kind=self.disk_port.queue.kind)
        self._wire_devices()
        self._boot()
        self.state = VmState.RUNNING
        bsp = self.vcpus[0]
        bsp.state = VCpuState.RUNNABLE
        self.publish("power.guest_start", vcpu=0, eip=bsp.backend.get_regs()["eip"])
        self._attach_network()
        self.publish("power.running")

    def _boot(self) -> None:
        bsp = self.vcpus[0].backend
        if self.config.kernel is not None:
            self.firmware.post()
            entry = boot_multiboot(bsp, self.memory, str(self.config.kernel), kernel_cmdline(self.config),
                                   boot_drive=0x80 if self.disk else None)
            self.publish("power.firmware_boot_read", kernel=str(self.config.kernel), entry=entry)
        else:
            self.firmware.boot(bsp)

    def _wire_devices(self) -> None:
        ctx = DeviceContext(
            vm_name=self.name, clock=self.clock.now, publish=self.publish, irq=self._irq_line,
            power_off=self.power_off, reset=self.request_reset, set_a20=self.set_a20,
            read_guest=self.memory.read, write_guest=self.memory.write, memory=self.memory)
        parts = MachineParts(disk=self.disk, memory_mib=self.config.memory_mib, config=self.config,
                             disk_port=self.disk_port)
        for spec in PC_DEVICES:
            dev = spec.factory(spec.name, ctx, parts)
            self.devices[spec.name] = dev
            for base, length, attr in spec.windows:
                self.io_bus.register(base, length, getattr(dev, attr) if attr else dev)
            parts.register(spec.name, dev)
        for vspec in VIRTIO_DEVICES:                 # paravirtual devices the config asks for
            if vspec.wanted(self.config):
                base, irq = slot(vspec.slot)
                dev = vspec.factory(vspec.name, ctx, parts, irq)
                self.devices[vspec.name] = dev
                self.mmio_bus.register(base, WINDOW, dev)
                parts.register(vspec.name, dev)
        self.pic = self.devices["pic"]
        self.uart = self.devices["com1"]
        self.uart.sink = self._console_output
        self.vga = self.devices["vga"]

    def _attach_network(self) -> None:
        """Plug the NIC into its switch port (after the guest started, as a cable is)."""
        nic = self.devices.get("virtio-net")
        if nic is None or self.config.nic is None:
            return
        port = self.hv.network.plug(self.name, self.config.nic, nic, lambda: self.active)
        self.publish("power.network_attached", switch=self.config.nic.switch, port=port.number,
                     mac=nic.state()["mac"], vlan=port.vlan.describe())

    def _irq_line(self, number: int) -> IrqLine:
        return IrqLine(number, self._set_irq)

    def _set_irq(self, number: int, level: bool) -> None:
        self.pic.set_irq(number, level)
        if level and self.hv.events.wants("irq.raise"):
            self.publish("irq.raise", irq=number)

    # --- what the firmware and devices call -------------------------------------------------
    def port_write(self, port: int, value: int, size: int = 1) -> None:
        self.io_bus.write(port, size, value)

    def port_read(self, port: int, size: int = 1) -> int:
        return self.io_bus.read(port, size)

    def clock_ns(self) -> int:
        return self.clock.now()

    def serial_key(self, consume: bool) -> int | None:
        if consume:
            return self.uart.take_input()
        peek = getattr(self.uart, "peek_input", None)
        if peek is not None:
            return peek()
        return self.uart.rx[0] if self.uart.rx else (self.uart._wire[0] if self.uart._wire else None)

    def set_a20(self, on: bool) -> None:
        if self.memory.a20 != on:
            self.memory.a20 = on
            self.memory.generation += 1

    def power_off(self, reason: str, status: int = 0) -> None:
        if self._pending is None:
            self._pending = ("off", (reason, status))

    def request_reset(self) -> None:
        if self._pending is None:
            self._pending = ("reset", None)

    def _console_output(self, data: bytes) -> None:
        self.console += data
        for sink in self.console_sinks:
            sink(data)

    def feed_input(self, data: bytes) -> None:
        self.uart.feed(data)
        self.wake()

    # --- VCpuHost: exits from the backend ----------------------------------------------------
    @property
    def vm_name(self) -> str:
        return self.name

    def handle_io(self, exit: "IoExit", vcpu: "VCpuBackend") -> bool:
        return dispatch_io(self, exit, vcpu)

    def handle_mmio(self, exit: "MmioExit", vcpu: "VCpuBackend") -> bool:
        return dispatch_mmio(self, exit, vcpu)

    def deadline_moved(self, device) -> bool:
        """Did the device this exit reached just schedule something (a disk completion,
        a timer) before the current slice ends? Then the slice must end there, so the
        completion lands at its exact guest time (deterministic mode)."""
        if device is None or self._slice_end is None:
            return False
        owner = getattr(device, "owner", device)
        deadline = owner.next_deadline()
        return deadline is not None and deadline < self._slice_end

    def needs_attention(self, vcpu: "VCpuBackend") -> bool:
        if self._pending is not None:
            return True
        return vcpu.index == 0 and self.pic.has_interrupt() and vcpu.can_take_interrupt()

    def _unclaimed_port(self, port: int, size: int, write: bool) -> None:
        self.publish("io.unknown_port", port=port, size=size, write=write)

    def _unclaimed_mmio(self, addr: int, size: int, write: bool) -> None:
        self.publish("mem.isolation", gpa=addr, size=size, write=write,
                     note="no RAM or device here: open bus")

    # --- running ---------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self.state == VmState.RUNNING

    def next_deadline(self) -> int | None:
        deadlines = [d for dev in self.devices.values() if (d := dev.next_deadline()) is not None]
        return min(deadlines) if deadlines else None

    def advance_devices(self, now_ns: int) -> int | None:
        """Let every device whose deadline has come do its work; return the earliest
        deadline still ahead (one pass over the devices)."""
        earliest = None
        for dev in self.devices.values():
            d = dev.next_deadline()
            if d is not None and d <= now_ns:
                dev.advance(now_ns)
                d = dev.next_deadline()
            if d is not None and d > now_ns and (earliest is None or d < earliest):
                earliest = d
        if self.pic.has_interrupt():
            self.wake()
        return earliest

    def wake(self) -> None:
        bsp = self.vcpus[0] if self.vcpus else None
        if bsp is not None and bsp.state == VCpuState.HALTED and self.pic.has_interrupt():
            bsp.state = VCpuState.RUNNABLE
            self.publish("sched.wake", vcpu=0)

    def deliver_interrupts(self, vcpu: VCpu) -> None:
        if vcpu.index != 0 or not self.pic.has_interrupt():
            return
        if not vcpu.backend.can_take_interrupt():
            return
        vector = self.pic.acknowledge()
        vcpu.stats.interrupts += 1
        if self.hv.events.wants("irq.deliver"):
            self.publish("irq.deliver", vcpu=vcpu.index, vector=vector)
        vcpu.backend.interrupt(vector)

    def run_vcpu(self, vcpu: VCpu, end_ns: int, wall_slice_us: int | None = None) -> None:
        """Run ``vcpu`` until guest time ``end_ns``, it blocks, or the VM stops."""
        clock = self.clock
        clock.start(vcpu.backend, clock.base_ns)
        vcpu.state = VCpuState.RUNNING
        start_insns = vcpu.backend.instructions()
        try:
            while self.active and vcpu.state == VCpuState.RUNNING:
                now = clock.now()
                if now >= end_ns:
                    break
                deadline = self.advance_devices(now)
                try:
                    self.deliver_interrupts(vcpu)
                except TripleFault as tf:
                    self.crash(str(tf))
                    break
                if self.hv.deterministic:
                    stop_at = min(end_ns, deadline) if deadline is not None else end_ns
                    self._slice_end = stop_at
                    exit = vcpu.backend.run(max(1, (stop_at - now) // NS_PER_INSTRUCTION), None)
                    self._slice_end = None
                else:
                    # wall_slice_us=0: no engine timer; the scheduler's slice timer stops it
                    wall = max(1, (end_ns - now) // 1000) if wall_slice_us is None else wall_slice_us or None
                    exit = vcpu.backend.run(None, wall)
                vcpu.count_exit(exit.kind)
                EXIT_ACTIONS[exit.kind](self, vcpu, exit)
                self._apply_pending()
        finally:
            now = clock.stop()
            vcpu.stats.instructions += vcpu.backend.instructions() - start_insns
            if vcpu.state == VCpuState.RUNNING:
                vcpu.state = VCpuState.RUNNABLE

    def step_vcpu(self, index: int = 0) -> Exit:
        """Execute exactly one instruction on vCPU ``index`` (for the debugger/GUI)."""
        vcpu = self.vcpus[index]
        if not self.active:
            raise SandboxError(f"VM {self.name} is not running")
        self.clock.start(vcpu.backend, self.clock.base_ns)
        try:
            self.advance_devices(self.clock.now())
            self.deliver_interrupts(vcpu)
            exit = vcpu.backend.step()
            vcpu.count_exit(exit.kind)
            if exit.kind != "step":
                EXIT_ACTIONS[exit.kind](self, vcpu, exit)
            self._apply_pending()
        finally:
            self.clock.stop()
        return exit

    def _apply_pending(self) -> None:
        if self._pending is None:
            return
        what, arg = self._pending
        self._pending = None
        if what == "off":
            self.stop(VmState.POWERED_OFF, *arg)
        elif what == "reset":
            self.reset()

    def reset(self) -> None:
        self.publish("vm.reset")
        for dev in self.devices.values():
            dev.reset()
        self.memory.a20 = True
        for cpu in self.vcpus:
            cpu.state = VCpuState.CREATED
        self._boot()
        self.vcpus[0].state = VCpuState.RUNNABLE

    # --- life cycle controls (the explorer's buttons) --------------------------------------
    def pause(self) -> None:
        """Stop scheduling this VM's vCPUs (the scheduler only runs ``active`` VMs);
        the other VMs go on. Call it between scheduler rounds."""
        if self.state != VmState.RUNNING:
            raise SandboxError(f"VM {self.name} is {self.state.value}, not running: nothing to pause")
        self.state = VmState.PAUSED
        self.publish("vm.paused")

    def resume(self) -> None:
        """Schedule a paused VM again; its clock jumps over the time it spent paused."""
        if self.state != VmState.PAUSED:
            raise SandboxError(f"VM {self.name} is {self.state.value}, not paused: nothing to resume")
        self.clock.set(self.hv.now_ns)
        self.state = VmState.RUNNING
        self.publish("vm.resumed")

    def restart(self) -> None:
        """Power a stopped (powered off, crashed, timed out) VM on again, or reboot a
        running or paused one: devices reset, RAM cleared, the CPU starts at the firmware."""
        if self.state == VmState.CREATED:
            raise SandboxError(f"VM {self.name} was never powered on: power it on first")
        if self.state not in (VmState.RUNNING, VmState.PAUSED):
            self._clear_memory()        # a power cycle: RAM does not survive it
        self.exit_reason = self.exit_status = None
        self._pending = None
        self.clock.set(self.hv.now_ns)
        self.state = VmState.RUNNING
        self.reset()

    def _clear_memory(self) -> None:
        """Give every host frame (and swap slot) back: the next touch gets a zeroed frame."""
        mm = self.hv.memory_manager
        acct = mm.accounts[self.name]
        for slot in self.memory.swapped.values():
            mm.swap.file.free(slot)
        self.memory.swapped.clear()
        self.memory.ballooned.clear()
        for gfn in range(len(self.memory.table)):
            mm.unmap(acct, gfn)

    def stop(self, state: VmState, reason: str, status: int | None) -> None:
        if not self.active and self.state != VmState.PAUSED:
            return
        self.state = state
        self.exit_reason = reason
        self.exit_status = status
        for cpu in self.vcpus:
            cpu.state = VCpuState.DONE
        if self.disk is not None:
            try:
                self.disk.flush()
            except OSError:
                pass
        self.publish("vm.stopped", state=state.value, reason=reason, status=status)

    def crash(self, reason: str) -> None:
        self.stop(VmState.CRASHED, reason, None)

    def close(self) -> None:
        for cpu in self.vcpus:
            cpu.backend.close()
        if self.disk is not None:
            self.disk.close()
            self.disk = None

    # --- inspection -----------------------------------------------------------------------------
    def screen(self) -> list[str]:
        return self.vga.screen()


# --- what each exit means for the vCPU (a table, not an if-chain) ------------------------------
def _nothing(vm: VirtualMachine, vcpu: VCpu, exit: Exit) -> None:
    return None


def _halt(vm: VirtualMachine, vcpu: VCpu, exit: Exit) -> None:
    if exit.interrupts_enabled:
        if vcpu.index == 0 and vm.pic.has_interrupt():
            return                        # an interrupt is already waiting: no need to block
        vcpu.state = VCpuState.HALTED
        if vm.traced("sched.block"):
            vm.publish("sched.block", vcpu=vcpu.index, reason="hlt")
        return
    vcpu.state = VCpuState.DONE
    if all(c.state in (VCpuState.DONE, VCpuState.CREATED) for c in vm.vcpus):
        vm.power_off("halted with interrupts disabled (cli; hlt)", 0)


def _shutdown(vm: VirtualMachine, vcpu: VCpu, exit: Exit) -> None:
    vm.power_off(exit.reason, exit.status)


def _crash(vm: VirtualMachine, vcpu: VCpu, exit: Exit) -> None:
    vm.crash(exit.reason)


def _step(vm: VirtualMachine, vcpu: VCpu, exit: Exit) -> None:
    vcpu.state = VCpuState.RUNNABLE


EXIT_ACTIONS: dict[str, Callable[[VirtualMachine, VCpu, Any], None]] = {
    "budget": _nothing,        # the slice is used up: back to the scheduler
    "stop": _nothing,          # stopped to deliver an interrupt or apply a power action
    "io": _nothing,            # (served synchronously by the dispatcher)
    "mmio": _nothing,
    "hlt": _halt,
    "shutdown": _shutdown,
    "crash": _crash,
    "step": _step,
}

__all__ = ["VirtualMachine", "VmState", "SandboxError"]
