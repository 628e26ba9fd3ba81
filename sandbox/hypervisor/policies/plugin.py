"""Loading a policy a student wrote: ``scheduler = "my_policy:MyPolicy"``.

The module is looked for next to the machine config first (``my_policy.py`` beside
``machine.toml``), then on Python's import path. Everything that can go wrong while
loading is a ``ConfigError`` with one line that names the policy; what goes wrong
*while it runs* is handled by ``guard.py``.
"""
from __future__ import annotations

import importlib
import importlib.util
import traceback
from pathlib import Path

from sandbox.errors import ConfigError


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" ({Path(exc.filename).name} line {exc.lineno})"
    return f" ({Path(frames[-1].filename).name} line {frames[-1].lineno})" if frames else ""


def _import(module: str, base_dir: Path | None, label: str):
    candidate = base_dir / (module.replace(".", "/") + ".py") if base_dir is not None else None
    try:
        if candidate is not None and candidate.is_file():
            spec = importlib.util.spec_from_file_location(f"sandbox_policy_{module.replace('.', '_')}", candidate)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)      # type: ignore[union-attr]
            return mod
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module or module.startswith(f"{e.name}."):
            near = f" next to {base_dir} or" if base_dir is not None else ""
            raise ConfigError(f"scheduler '{label}': no module '{module}'{near} on the Python path") from None
        raise ConfigError(f"scheduler '{label}': importing it failed: {type(e).__name__}: {e}{_where(e)}") from None
    except Exception as e:  # noqa: BLE001 - any error in a student's module is reported, not raised
        raise ConfigError(f"scheduler '{label}': importing it failed: {type(e).__name__}: {e}{_where(e)}") from None


def load_plugin(spec: str, base_dir: Path | None):
    """Create the policy object that ``"module:Class"`` names."""
    module, _, cls_name = spec.partition(":")
    if not module or not cls_name:
        raise ConfigError(f"scheduler '{spec}': write a plug-in as 'module:Class'")
    mod = _import(module, base_dir, spec)
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise ConfigError(f"scheduler '{spec}': module '{module}' has no class '{cls_name}'")
    if not callable(getattr(cls, "pick", None)):
        raise ConfigError(f"scheduler '{spec}': '{cls_name}' is not a scheduling policy "
                          f"(it needs a pick(pcpu, runnable, now_ns) method)")
    try:
        policy = cls()
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"scheduler '{spec}': creating {cls_name}() failed: "
                          f"{type(e).__name__}: {e}{_where(e)}") from None
    return policy


__all__ = ["load_plugin"]
