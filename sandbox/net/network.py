"""The host's virtual network: every [[switch]] of the config, and the plugging of
VM NICs into their ports. The hypervisor owns one ``Network``."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable

from sandbox.errors import ConfigError
from sandbox.net.netconfig import port_vlan
from sandbox.net.pcap import PcapWriter
from sandbox.net.vswitch import SwitchPort, VirtualSwitch

if TYPE_CHECKING:
    from sandbox.config.model import NicConfig, SwitchConfig
    from sandbox.devices.virtio.net import VirtioNet
    from sandbox.events import EventBus


class LockedSwitch(VirtualSwitch):
    """In fast mode VMs run on several host threads: one frame at a time per switch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def receive(self, in_port: int, frame: bytes, now_ns: int):
        with self._lock:
            return super().receive(in_port, frame, now_ns)


class Network:
    def __init__(self, switches: "list[SwitchConfig]", events: "EventBus",
                 on_frame_queued: Callable[[], None] = lambda: None) -> None:
        self.switches: dict[str, VirtualSwitch] = {
            s.name: LockedSwitch(s.name, s.ports, s.ageing_s, int(s.latency_us * 1000), s.mirror_to,
                                 publish=events.publish, wants=events.wants)
            for s in switches}
        self.ports: dict[str, SwitchPort] = {}              # VM name -> its port
        self._on_frame_queued = on_frame_queued

    def plug(self, vm_name: str, nic: "NicConfig", device: "VirtioNet",
             running: Callable[[], bool]) -> SwitchPort:
        """Connect ``device`` to the next free port of its switch, both directions."""
        switch = self.switches[nic.switch]
        deliver = device.deliver

        def to_device(frame: bytes, at_ns: int) -> None:
            deliver(frame, at_ns)
            self._on_frame_queued()

        port = switch.attach(vm_name, port_vlan(nic), to_device, nic.rate_limit_mbit,
                             link_up=lambda: running() and device.driver_ready)
        device.uplink = lambda frame, now_ns: switch.receive(port.number, frame, now_ns)
        self.ports[vm_name] = port
        return port

    def capture(self, switch: str, path: str) -> PcapWriter:
        if switch not in self.switches:
            known = ", ".join(self.switches) or "none"
            raise ConfigError(f"--pcap {switch}={path}: no switch named '{switch}' (known: {known})")
        writer = PcapWriter(path)
        self.switches[switch].capture(writer)
        return writer

    def state(self, now_ns: int | None = None) -> list[dict[str, Any]]:
        return [sw.state(now_ns) for sw in self.switches.values()]

    def close(self) -> None:
        for sw in self.switches.values():
            sw.close()
