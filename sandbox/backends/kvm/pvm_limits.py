"""What a paravirtual KVM (kvm_pvm) cannot run, recognised from the vCPU's state.

PVM runs guests without VT-x/AMD-V; for a 32-bit guest every instruction goes through
KVM's instruction emulator, and ``fallback.py`` fills the gaps it has for interrupts.
Two things have no way through (measured on such a host; see docs/kvm.md):

- 32-bit or PAE paging: PVM shadows only 64-bit (long-mode) page tables. Setting CR0.PG
  outside long mode makes the ``mov cr0`` fault; with no IDT, or an IDT that cannot
  handle it, the vCPU shuts down ("triple fault").
- instructions the emulator does not implement (``popcnt``, ``crc32``, AES-NI, ...):
  in ring 0 KVM stops with "could not emulate"; in ring 3 it gives the guest a #UD.

``limit_hit`` says whether a stopped guest ran into it, so the user reads that reason
instead of a bare "triple fault". (A guest whose own #GP handler catches the fault
keeps running and reports it itself: no exit tells the hypervisor.) On VT-x/AMD-V
hosts nothing here is consulted.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from sandbox.backends.base import CR0_PE, CR0_PG

if TYPE_CHECKING:
    from sandbox.backends.kvm.abi import kvm_regs, kvm_sregs

EFER_LMA = 1 << 10          # long mode active
ADVICE = "run it with --backend unicorn, or on a host with VT-x/AMD-V"
GPR_FIELDS = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi")   # ModRM register order

# name -> (what the guest did, why the host cannot)
LIMITS: dict[str, tuple[str, str]] = {
    "paging": ("32-bit paging (CR0.PG=1 outside long mode)",
               "PVM shadows only 64-bit page tables"),
    "instruction": ("an instruction KVM's emulator does not implement",
                    "kvm_pvm runs 32-bit guests entirely in that emulator"),
}


def describe(name: str) -> str:
    what, why = LIMITS[name]
    return f"kvm_pvm cannot run {what}: {why}; {ADVICE}"


def limit_hit(sregs: "kvm_sregs", regs: "kvm_regs | None" = None,
              read_linear: Callable[[int, int], bytes] | None = None) -> str | None:
    """The name of the kvm_pvm limit this 32-bit state runs into, or None. With the
    registers and a way to read guest memory, the instruction at CS:EIP counts too."""
    if sregs.efer & EFER_LMA or not sregs.cr0 & CR0_PE:
        return None
    if sregs.cr0 & CR0_PG:
        return "paging"
    if regs is not None and read_linear is not None and _turns_paging_on(sregs, regs, read_linear):
        return "paging"
    return None


def _turns_paging_on(sregs: "kvm_sregs", regs: "kvm_regs",
                     read_linear: Callable[[int, int], bytes]) -> bool:
    """Is the instruction at CS:EIP ``mov cr0, r32`` with bit 31 (PG) set in r32?
    Encoding: 0F 22 /r, ModRM mod = 11, reg = 0 (CR0), rm = the source register."""
    code = read_linear(sregs.cs.base + (regs.rip & 0xFFFFFFFF), 3)
    if len(code) < 3 or code[:2] != b"\x0f\x22" or code[2] >> 6 != 3 or (code[2] >> 3) & 7:
        return False
    return bool(getattr(regs, GPR_FIELDS[code[2] & 7]) & CR0_PG)
