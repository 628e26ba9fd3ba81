"""Checks that need the whole machine config: does every NIC's switch exist, does it
have enough ports, is the mirror port a VM on it, are the MACs unique? And what the
guest learns from the config: its MAC, its port's VLANs, its ``ip=`` command line."""
from __future__ import annotations

from collections import Counter

from sandbox.config.model import MachineConfig, NicConfig, VmConfig
from sandbox.errors import ConfigError
from sandbox.net.frames import generated_mac
from sandbox.net.vlan import PortVlan


def nic_mac(vm: VmConfig) -> str:
    assert vm.nic is not None
    return (vm.nic.mac or generated_mac(vm.name)).lower()


def port_vlan(nic: NicConfig) -> PortVlan:
    if nic.trunk:
        return PortVlan.trunk(nic.trunk, nic.native_vlan)
    return PortVlan.access(nic.vlan or 1)


def kernel_cmdline(vm: VmConfig) -> str:
    """The VM's command line plus ``ip=ADDR/PREFIX gw=ADDR`` from its NIC, the way
    Firecracker users hand a static address to a guest kernel."""
    words = [vm.cmdline.strip()] if vm.cmdline.strip() else []
    if vm.nic is not None and vm.nic.ip:
        words.append(f"ip={vm.nic.ip}")
    if vm.nic is not None and vm.nic.gateway:
        words.append(f"gw={vm.nic.gateway}")
    return " ".join(words)


def check_network(config: MachineConfig) -> None:
    where = config.source
    names = [s.name for s in config.switches]
    for name, n in Counter(names).items():
        if n > 1:
            raise ConfigError(f"{where}: two switches are named '{name}'")
    switches = {s.name: s for s in config.switches}
    per_switch: dict[str, list[VmConfig]] = {name: [] for name in switches}
    for vm in config.vms:
        nic = vm.nic
        if nic is None:
            continue
        at = f"{where} [[vm]] {vm.name} nic"
        if nic.switch not in switches:
            known = ", ".join(switches) or "none: add a [[switch]]"
            raise ConfigError(f"{at}: no switch named '{nic.switch}' (known: {known})")
        if nic.vlan is not None and nic.trunk:
            raise ConfigError(f"{at}: a port is either an access port ('vlan') or a trunk ('trunk'), not both")
        if nic.native_vlan is not None and not nic.trunk:
            raise ConfigError(f"{at}: 'native_vlan' needs 'trunk'")
        if nic.ip and vm.kernel is None:
            raise ConfigError(f"{at}: 'ip' is passed on the kernel command line, so the VM needs 'kernel'")
        per_switch[nic.switch].append(vm)
    for name, vms in per_switch.items():
        sw = switches[name]
        if len(vms) > sw.ports:
            raise ConfigError(f"{where} [[switch]] {name}: {len(vms)} NICs but only {sw.ports} ports")
        for mac, n in Counter(nic_mac(vm) for vm in vms).items():
            if n > 1:
                raise ConfigError(f"{where} [[switch]] {name}: two NICs have the MAC {mac}")
        if sw.mirror_to is not None and sw.mirror_to not in {vm.name for vm in vms}:
            raise ConfigError(f"{where} [[switch]] {name}: mirror_to '{sw.mirror_to}' is not a VM "
                              f"with a NIC on this switch")
