"""Read a machine config (TOML) or command-line options into validated resources.

Every complaint names the file, the section and the key, in one line.
"""
from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any

from sandbox.config.model import HostConfig, MachineConfig, NicConfig, SwitchConfig, VmConfig
from sandbox.config.schema import HOST_KEYS, NIC_KEYS, SWITCH_KEYS, VM_KEYS, Key
from sandbox.errors import ConfigError
from sandbox.net.netconfig import check_network


def unescape(text: str) -> bytes:
    """``--input 'ls\\ncat motd\\n'``: the escapes a shell user types, made real."""
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1")


def _check(where: str, key: str, value: Any, table: dict[str, Key], base: Path | None) -> Any:
    spec = table.get(key)
    if spec is None:
        close = difflib.get_close_matches(key, table, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(table)})"
        raise ConfigError(f"{where}: unknown key '{key}'{hint}")
    if isinstance(value, bool) and bool not in spec.types or not isinstance(value, spec.types):
        names = " or ".join(t.__name__ for t in spec.types)
        raise ConfigError(f"{where}: '{key}' must be {names}, not {value!r}")
    if spec.check is not None and (problem := spec.check(value)):
        raise ConfigError(f"{where}: '{key}' = {value!r} {problem}")
    if spec.path:
        path = Path(value)
        return ((base / path) if base is not None and not path.is_absolute() else path).resolve()
    return value


def build_vm(values: dict[str, Any], where: str, base: Path | None) -> VmConfig:
    checked = {k: _check(where, k, v, VM_KEYS, base) for k, v in values.items()}
    if "name" not in checked:
        raise ConfigError(f"{where}: missing 'name'")
    if ("disk" in checked) == ("kernel" in checked) and "disk" not in checked:
        raise ConfigError(f"{where}: needs 'disk' or 'kernel'")
    for key in ("disk", "kernel"):
        if key in checked and not checked[key].is_file():
            raise ConfigError(f"{where}: {key} '{values[key]}' not found (looked for {checked[key]})")
    if "input" in checked:
        checked["input"] = unescape(checked["input"])
    if "nic" in checked:
        nic = {k: _check(f"{where} nic", k, v, NIC_KEYS, base) for k, v in checked["nic"].items()}
        if "switch" not in nic:
            raise ConfigError(f"{where} nic: missing 'switch'")
        checked["nic"] = NicConfig(**nic)
    return VmConfig(**checked)


def load_machine(path: str | Path) -> MachineConfig:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read config ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    sections = {"host", "vm", "switch"}
    for key in data:
        if key not in sections:
            raise ConfigError(f"{path}: unknown section '{key}' (known: [host], [[vm]], [[switch]])")
    host_values = data.get("host", {})
    if not isinstance(host_values, dict):
        raise ConfigError(f"{path}: [host] must be a table")
    host = HostConfig(**{k: _check(f"{path} [host]", k, v, HOST_KEYS, path.parent)
                         for k, v in host_values.items()})
    vm_tables = data.get("vm", [])
    if not isinstance(vm_tables, list) or not vm_tables:
        raise ConfigError(f"{path}: needs at least one [[vm]] table")
    vms = [build_vm(t, f"{path} [[vm]] #{i + 1}", path.parent) for i, t in enumerate(vm_tables)]
    names = [vm.name for vm in vms]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"{path}: two VMs are named '{name}'")
    switch_tables = data.get("switch", [])
    if not isinstance(switch_tables, list) or not all(isinstance(t, dict) for t in switch_tables):
        raise ConfigError(f"{path}: the switch section must be [[switch]] tables")
    switches = []
    for i, t in enumerate(switch_tables):
        where = f"{path} [[switch]] #{i + 1}"
        values = {k: _check(where, k, v, SWITCH_KEYS, path.parent) for k, v in t.items()}
        if "name" not in values:
            raise ConfigError(f"{where}: missing 'name'")
        switches.append(SwitchConfig(**values))
    config = MachineConfig(host, vms, str(path), switches)
    check_network(config)
    if host.memory_mib is not None and host.memory_mib < 2:
        raise ConfigError(f"{path} [host]: 'memory_mib' too small")
    return config


def from_options(image: str | None, kernel: str | None, memory_mib: int = 16, backend: str = "unicorn",
                 deterministic: bool = True, cmdline: str = "", input_text: str = "") -> MachineConfig:
    """The single-VM machine that ``sandbox run IMAGE`` or ``--kernel`` describes."""
    if memory_mib < 2 or memory_mib > 2048:
        raise ConfigError(f"--memory {memory_mib}: must be between 2 and 2048 MiB")
    for label, p in (("disk image", image), ("kernel", kernel)):
        if p is not None and not Path(p).exists():
            raise ConfigError(f"{p}: {label} not found")
        if p is not None and Path(p).is_dir():
            raise ConfigError(f"{p}: is a directory, not a {label}")
    name = Path(kernel or image or "vm").stem or "vm"
    vm = VmConfig(name=name, memory_mib=memory_mib, disk=Path(image) if image else None,
                  kernel=Path(kernel) if kernel else None, cmdline=cmdline,
                  input=unescape(input_text) if input_text else b"")
    return MachineConfig(HostConfig(backend=backend, deterministic=deterministic), [vm])
