"""What a lesson or lab may require of the checkout it runs in, so that content for a
feature can be written before the feature lands (it is listed as "waiting for ...").

    requires = ["module:sandbox.hypervisor.page_sharing",   # importable
                "config:vm.cpu_shares",                      # a known machine-config key
                "file:guests/images/twins.elf"]              # present, relative to the repository
"""
from __future__ import annotations

import importlib.util
from typing import Any

from lessons import LESSONS_DIR
from sandbox.errors import SandboxError


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _has_config_key(name: str) -> bool:
    from sandbox.config.schema import HOST_KEYS, VM_KEYS   # noqa: PLC0415
    section, _, key = name.partition(".")
    return key in {"host": HOST_KEYS, "vm": VM_KEYS}.get(section, {})


def _has_file(name: str) -> bool:
    return (LESSONS_DIR.parent / name).exists()


REQUIREMENTS: dict[str, Any] = {"module": _has_module, "config": _has_config_key, "file": _has_file}


def missing_features(requires: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The requirements this checkout does not meet (yet): features other work adds."""
    out = []
    for item in requires:
        kind, _, name = str(item).partition(":")
        check = REQUIREMENTS.get(kind)
        if check is None:
            raise SandboxError(f"requirement '{item}' must start with one of "
                               f"{', '.join(k + ':' for k in REQUIREMENTS)}")
        if not check(name):
            out.append(str(item))
    return tuple(out)
