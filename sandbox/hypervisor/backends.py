"""The table of vCPU engines. Each entry builds one vCPU for a VM."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from sandbox.errors import BackendUnavailable

if TYPE_CHECKING:
    from sandbox.backends.base import VCpuBackend, VCpuHost


def _unicorn(host: "VCpuHost", index: int) -> "VCpuBackend":
    from sandbox.backends.unicorn.cpu import UnicornVCpu   # noqa: PLC0415 (engines load lazily)
    return UnicornVCpu(host, index)


def _kvm(host: "VCpuHost", index: int) -> "VCpuBackend":
    try:
        from sandbox.backends.kvm.vcpu import KvmVCpu       # noqa: PLC0415
    except ImportError:
        raise BackendUnavailable("the kvm backend is not available in this build; use --backend unicorn") from None
    return KvmVCpu(host, index)


@dataclass(frozen=True)
class Engine:
    name: str
    description: str
    deterministic: bool
    factory: Callable[["VCpuHost", int], "VCpuBackend"]


ENGINES: dict[str, Engine] = {
    "unicorn": Engine("unicorn", "QEMU's TCG via Unicorn: every guest instruction is emulated; "
                      "deterministic guest time.", True, _unicorn),
    "kvm": Engine("kvm", "Linux KVM: guest code runs on the real CPU (hardware virtualization); "
                  "wall-clock time only.", False, _kvm),
}
