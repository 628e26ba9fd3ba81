"""The public API: what the CLI, the GUI, lessons, labs and tests use.

    from sandbox.api import Machine
    m = Machine("machine.toml")           # or Machine.from_image("guests/images/hello.img")
    m.events.subscribe(print)             # typed events, with guest time and layer
    m.power_on()
    m.run(until_ns=2_000_000_000)
    print(m.vms["hello"].console.decode())

Everything else in ``sandbox`` is machinery behind this facade.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from sandbox.config.load import from_options, load_machine
from sandbox.config.model import MachineConfig
from sandbox.events import EventBus
from sandbox.hypervisor.hypervisor import Hypervisor
from sandbox.vm.machine import VirtualMachine


class Machine:
    def __init__(self, config: MachineConfig | str | Path, events: EventBus | None = None) -> None:
        if not isinstance(config, MachineConfig):
            config = load_machine(config)
        self.config = config
        self.events = events or EventBus()
        self.hypervisor = Hypervisor(config, self.events)

    @classmethod
    def from_image(cls, image: str | Path | None = None, kernel: str | Path | None = None,
                   memory_mib: int = 16, deterministic: bool = True, backend: str = "unicorn",
                   cmdline: str = "", input_text: str = "", events: EventBus | None = None) -> "Machine":
        config = from_options(str(image) if image else None, str(kernel) if kernel else None,
                              memory_mib, backend, deterministic, cmdline, input_text)
        return cls(config, events)

    @property
    def vms(self) -> dict[str, VirtualMachine]:
        return self.hypervisor.vms

    @property
    def now_ns(self) -> int:
        return self.hypervisor.now_ns

    def vm(self, name: str | None = None) -> VirtualMachine:
        return self.vms[name] if name else next(iter(self.vms.values()))

    def power_on(self, name: str | None = None) -> None:
        self.hypervisor.power_on(name)

    def run(self, until_ns: int | None = None, wall_timeout_s: float | None = None,
            should_stop: Callable[[], bool] | None = None) -> str:
        return self.hypervisor.run(until_ns, wall_timeout_s, should_stop)

    def run_for(self, guest_ns: int, wall_timeout_s: float | None = None) -> str:
        return self.run(self.now_ns + guest_ns, wall_timeout_s)

    def step(self, vm_name: str | None = None, vcpu: int = 0):
        """Execute exactly one guest instruction; returns the exit record."""
        return self.vm(vm_name).step_vcpu(vcpu)

    def pause(self, name: str) -> None:
        """Stop scheduling one VM's vCPUs; the others go on (between ``run`` calls)."""
        self.vms[name].pause()

    def resume(self, name: str) -> None:
        self.vms[name].resume()

    def restart(self, name: str) -> None:
        """Power a stopped or crashed VM on again (or reboot a running one)."""
        self.vms[name].restart()

    def attach_console(self, vm_name: str, sink: Callable[[bytes], None]) -> None:
        self.vms[vm_name].console_sinks.append(sink)

    def feed(self, vm_name: str, data: bytes | str) -> None:
        self.vms[vm_name].feed_input(data.encode() if isinstance(data, str) else data)

    def report(self) -> dict[str, Any]:
        from sandbox.hypervisor.report import build_report   # noqa: PLC0415
        return build_report(self.hypervisor)

    def memcheck(self, content: bool = True) -> list:
        """Check memory isolation now: the broken invariants (an empty list: it holds).
        ``content=False`` skips the byte comparisons (faster)."""
        from sandbox.hypervisor.isolation import check_and_publish   # noqa: PLC0415
        return check_and_publish(self.hypervisor.memory_manager, content)

    def close(self) -> None:
        self.hypervisor.close()

    def __enter__(self) -> "Machine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
