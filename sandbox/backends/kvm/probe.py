"""What this machine offers for hardware virtualization, and what that means for speed.

``probe()`` looks, in order, at: the device node /dev/kvm; whether this process can open
it; the API version; the capabilities the KVM backend uses (KVM_CHECK_EXTENSION); the
CPU's virtualization flags (vmx = Intel VT-x, svm = AMD-V) in /proc/cpuinfo; and which
KVM modules are loaded (/sys/module). It never raises: every problem becomes a line in
``summary()``.

Two kinds of KVM exist on the machines this sandbox runs on:
- hardware-assisted (kvm_intel / kvm_amd): every guest instruction runs natively;
- paravirtual (kvm_pvm, used where the host is itself a VM without nested VT-x/AMD-V):
  only 64-bit ring-3 (user-mode) guest code runs natively; everything a 32-bit guest
  does, and all real-mode and ring-0 code, is emulated instruction by instruction by
  the host, and the KVM backend fills the gaps of that emulator (fallback.py).

Either way KVM runs guests in wall-clock time: deterministic mode is Unicorn-only.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import asdict, dataclass, field

from sandbox.backends.kvm import abi

# The capabilities the backend asks about: name -> (number, required, what it is for).
CAPABILITIES: dict[str, tuple[int, bool, str]] = {
    "KVM_CAP_USER_MEMORY": (abi.KVM_CAP_USER_MEMORY, True,
                            "guest RAM is this process's memory, registered as memory slots"),
    "KVM_CAP_READONLY_MEM": (abi.KVM_CAP_READONLY_MEM, True,
                             "read-only slots: a write to a shared page exits, for copy-on-write"),
    "KVM_CAP_IMMEDIATE_EXIT": (abi.KVM_CAP_IMMEDIATE_EXIT, True,
                               "a race-free way to stop a vCPU (kvm_run.immediate_exit)"),
    "KVM_CAP_NR_MEMSLOTS": (abi.KVM_CAP_NR_MEMSLOTS, True,
                            "how many memory slots a VM may have (each shared page splits one)"),
    "KVM_CAP_SET_TSS_ADDR": (abi.KVM_CAP_SET_TSS_ADDR, False,
                             "Intel without unrestricted guest runs real mode through a hidden TSS"),
    "KVM_CAP_SET_IDENTITY_MAP_ADDR": (abi.KVM_CAP_SET_IDENTITY_MAP_ADDR, False,
                                      "Intel: where KVM puts its identity page table for real mode"),
    "KVM_CAP_VCPU_EVENTS": (abi.KVM_CAP_VCPU_EVENTS, False,
                            "see the interrupt shadow (STI; MOV SS) before injecting an interrupt"),
    "KVM_CAP_SET_GUEST_DEBUG": (abi.KVM_CAP_SET_GUEST_DEBUG, False,
                                "single-step the guest for the debugger"),
    "KVM_CAP_INTERNAL_ERROR_DATA": (abi.KVM_CAP_INTERNAL_ERROR_DATA, False,
                                    "details when KVM cannot emulate an instruction"),
    "KVM_CAP_EXIT_ON_EMULATION_FAILURE": (abi.KVM_CAP_EXIT_ON_EMULATION_FAILURE, False,
                                          "kvm_pvm: hand every instruction KVM cannot emulate to "
                                          "the sandbox (in ring 3 too) instead of a #UD in the guest"),
    "KVM_CAP_NR_VCPUS": (abi.KVM_CAP_NR_VCPUS, False, "recommended vCPUs per VM"),
    "KVM_CAP_MAX_VCPUS": (abi.KVM_CAP_MAX_VCPUS, False, "maximum vCPUs per VM"),
}

UNICORN_HINT = "use the Unicorn backend (--backend unicorn), which runs everywhere"


@dataclass
class KvmProbe:
    device: str = "/dev/kvm"
    present: bool = False               # the device node exists
    openable: bool = False              # this process could open it read-write
    open_error: str | None = None
    api_version: int | None = None
    capabilities: dict[str, int] = field(default_factory=dict)   # name -> KVM_CHECK_EXTENSION
    cpu_vendor_flag: str | None = None  # "vmx" (Intel VT-x), "svm" (AMD-V) or None
    host_is_vm: bool = False            # cpu flag "hypervisor": this host is itself a guest
    modules: list[str] = field(default_factory=list)     # loaded: kvm, kvm_intel, kvm_amd, kvm_pvm
    nested: str | None = None           # kvm_intel/kvm_amd "nested" parameter, if loaded

    # --- what it means --------------------------------------------------------------------
    @property
    def paravirtual(self) -> bool:
        return "kvm_pvm" in self.modules

    @property
    def missing(self) -> list[str]:
        return [name for name, (_n, required, _why) in CAPABILITIES.items()
                if required and self.capabilities.get(name, 0) <= 0]

    @property
    def usable(self) -> bool:
        return self.openable and self.api_version == abi.KVM_API_VERSION and not self.missing

    @property
    def mode(self) -> str:
        """'unavailable', 'paravirtual' (kvm_pvm) or 'hardware' (VT-x / AMD-V)."""
        if not self.usable:
            return "unavailable"
        return "paravirtual" if self.paravirtual else "hardware"

    def problem(self) -> str | None:
        """One line saying why KVM cannot be used, or None."""
        if not self.present:
            return (f"{self.device} does not exist (no KVM module loaded, or a container "
                    f"without the device); {UNICORN_HINT}")
        if not self.openable:
            return (f"{self.device} exists but cannot be opened ({self.open_error}): join the "
                    f"'kvm' group or run as root, or {UNICORN_HINT}")
        if self.api_version != abi.KVM_API_VERSION:
            return (f"KVM API version {self.api_version}, expected {abi.KVM_API_VERSION}; "
                    f"{UNICORN_HINT}")
        if self.missing:
            return f"this KVM lacks {', '.join(self.missing)}; {UNICORN_HINT}"
        return None

    @property
    def fallback(self) -> bool:
        """The KVM backend's emulation fallback (fallback.py) is on: kvm_pvm only."""
        return self.mode == "paravirtual"

    def speed(self) -> str:
        """What the mode means for guest speed, honestly."""
        return SPEED[self.mode]

    def startup_line(self) -> str:
        """One line for ``sandbox run --backend kvm``: which KVM this is, and what follows."""
        return f"sandbox: KVM {self.mode}: {STARTUP[self.mode]}" + (
            f" ({self.problem()})" if self.mode == "unavailable" else "")

    def summary(self) -> str:
        lines = []
        problem = self.problem()
        lines.append(f"KVM: {self.mode}" + (f": {problem}" if problem else ""))
        lines.append(textwrap.fill(self.speed(), 88, initial_indent="  ", subsequent_indent="  ",
                                   break_on_hyphens=False))
        if self.usable:
            lines.append(textwrap.fill(TIME_NOTE, 88, initial_indent="  ", subsequent_indent="  "))
        if self.mode == "hardware" and self.host_is_vm:
            lines.append("  (nested virtualization: each exit goes through the outer hypervisor too, "
                         "so exits cost tens of microseconds)")
        cpu = {"vmx": "Intel VT-x (vmx)", "svm": "AMD-V (svm)"}.get(self.cpu_vendor_flag or "",
                                                                  "no VT-x/AMD-V flag")
        lines.append(f"  CPU: {cpu}" + ("; this host is itself a virtual machine" if self.host_is_vm else ""))
        lines.append(f"  modules: {', '.join(self.modules) or 'none'}"
                     + (f"; nested={self.nested}" if self.nested is not None else ""))
        if self.openable:
            lines.append(f"  API version {self.api_version}; memory slots "
                         f"{self.capabilities.get('KVM_CAP_NR_MEMSLOTS', 0)}")
            absent = [n for n, v in self.capabilities.items() if v <= 0]
            if absent:
                lines.append(f"  not offered: {', '.join(absent)}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(mode=self.mode, usable=self.usable, paravirtual=self.paravirtual,
                    fallback=self.fallback, deterministic=False, missing=self.missing,
                    problem=self.problem(), speed=self.speed(), startup_line=self.startup_line(),
                    summary=self.summary())
        return data


SPEED = {
    "unavailable": "Guests run on the Unicorn backend (software emulation, ~100-1,000 MIPS).",
    "paravirtual": ("Paravirtual KVM (kvm_pvm, no VT-x/AMD-V underneath): only 64-bit user-mode "
                    "guest code runs natively. Real-mode code and 32-bit guests (firmware, the "
                    "shipped kernels) are run by the host's instruction emulator at ~2 MIPS, "
                    "slower than Unicorn. Where that emulator falls short the sandbox steps in: "
                    "it does protected-mode int/iret and interrupt delivery itself, and "
                    "single-steps 32-bit ring-3 code (tens of thousands of instructions per "
                    "second) so that system calls work. Still impossible here: 32-bit and PAE "
                    "paging (PVM shadows only 64-bit page tables), and instructions that "
                    "emulator lacks (popcnt, crc32, AES-NI...). An I/O exit costs ~8-30 us."),
    "hardware": ("Hardware-assisted KVM: guest code runs natively in every mode "
                 "(billions of instructions per second); each exit to the hypervisor costs "
                 "a few microseconds."),
}

TIME_NOTE = ("KVM runs guests in wall-clock time: deterministic mode (guest time counted in "
             "instructions, identical runs) is Unicorn-only.")

# The start-up line of ``sandbox run --backend kvm``, by mode.
STARTUP = {
    "unavailable": "cannot be used",
    "paravirtual": ("kvm_pvm without VT-x/AMD-V: 32-bit guests are emulated by the host (~2 MIPS), "
                    "ring 3 single-stepped, no 32-bit paging; wall-clock time (deterministic "
                    "mode is Unicorn-only)"),
    "hardware": ("VT-x/AMD-V: guest code runs natively; wall-clock time (deterministic mode "
                 "is Unicorn-only)"),
}


def probe(device: str = "/dev/kvm", sys_module: str = "/sys/module",
          cpuinfo: str = "/proc/cpuinfo") -> KvmProbe:
    """Inspect the machine. The paths are parameters so tests can point at a fake tree."""
    result = KvmProbe(device=device)
    _probe_cpu(result, cpuinfo)
    _probe_modules(result, sys_module)
    result.present = os.path.exists(device)
    if result.present:
        _probe_device(result)
    return result


def _probe_cpu(result: KvmProbe, cpuinfo: str) -> None:
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    result.cpu_vendor_flag = "vmx" if "vmx" in flags else "svm" if "svm" in flags else None
                    result.host_is_vm = "hypervisor" in flags
                    return
    except OSError:
        pass


def _probe_modules(result: KvmProbe, sys_module: str) -> None:
    for name in ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm"):
        if os.path.isdir(os.path.join(sys_module, name)):
            result.modules.append(name)
            try:
                with open(os.path.join(sys_module, name, "parameters", "nested")) as f:
                    result.nested = f.read().strip()
            except OSError:
                pass


def _probe_device(result: KvmProbe) -> None:
    try:
        fd = os.open(result.device, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        result.open_error = e.strerror or str(e)
        return
    result.openable = True
    try:
        result.api_version = abi.ioctl(fd, abi.KVM_GET_API_VERSION)
        for name, (number, _required, _why) in CAPABILITIES.items():
            try:
                result.capabilities[name] = abi.ioctl(fd, abi.KVM_CHECK_EXTENSION, number)
            except OSError:
                result.capabilities[name] = 0
    except OSError as e:
        result.open_error = f"not a KVM device: {e.strerror}"
        result.openable = False
    finally:
        os.close(fd)
