"""The x86 two-level page walk (32-bit paging, 4 KiB and 4 MiB pages), done in software.

Once a guest turns paging on, a linear address must be translated through the guest's
own page tables before the hypervisor's table (guest frame -> host frame) applies.
Hardware with EPT/NPT does both walks itself ("nested paging"); a Unicorn vCPU in
virtual-TLB mode asks us, so this module is the software half of nested paging. The
KVM backend does not need it to run guests; the debugger uses it to read code at EIP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.vm.memory import GuestMemory

P, RW, US, A, D, PS = 1, 2, 4, 0x20, 0x40, 0x80
CR4_PSE = 1 << 4
CR4_PAE = 1 << 5

# Page-fault error code bits (Intel SDM vol. 3, 4.7).
PF_PRESENT, PF_WRITE, PF_USER, PF_FETCH = 1, 2, 4, 16


@dataclass(frozen=True, slots=True)
class Translation:
    gpa: int          # guest-physical address of the page (4 KiB aligned)
    writable: bool    # the guest's tables allow writes for this access's privilege
    user: bool        # the guest's tables allow ring-3 access


class PageFault(Exception):
    def __init__(self, linear: int, error_code: int) -> None:
        super().__init__(f"#PF at {linear:#x} (error code {error_code:#x})")
        self.linear = linear
        self.error_code = error_code


def walk(mem: "GuestMemory", cr3: int, cr4: int, linear: int, *, write: bool = False,
         user: bool = False, fetch: bool = False, wp: bool = False,
         set_accessed: bool = True) -> Translation:
    """Translate ``linear`` as the CPU would, raising ``PageFault`` when it would fault.
    Sets the accessed bits (and the dirty bit on a write) as the CPU does."""
    if cr4 & CR4_PAE:
        raise NotImplementedError("PAE paging is not supported by the software page walker")
    pde_addr = (cr3 & 0xFFFFF000) | ((linear >> 22) << 2)
    pde = mem.read_u32(pde_addr)
    err = (PF_WRITE if write else 0) | (PF_USER if user else 0) | (PF_FETCH if fetch else 0)
    if not pde & P:
        raise PageFault(linear, err)
    if pde & PS and cr4 & CR4_PSE:
        entry_addr, entry, levels = pde_addr, pde, (pde,)
        gpa = (pde & 0xFFC00000) | (linear & 0x003FF000)
    else:
        pte_addr = (pde & 0xFFFFF000) | (((linear >> 12) & 0x3FF) << 2)
        pte = mem.read_u32(pte_addr)
        if not pte & P:
            raise PageFault(linear, err)
        entry_addr, entry, levels = pte_addr, pte, (pde, pte)
        gpa = pte & 0xFFFFF000
    allow_user = all(e & US for e in levels)
    allow_write = all(e & RW for e in levels)
    if user and not allow_user:
        raise PageFault(linear, err | PF_PRESENT)
    if write and not allow_write and (user or wp):
        raise PageFault(linear, err | PF_PRESENT)
    if set_accessed:
        if entry_addr != pde_addr and not pde & A:
            mem.write_u32(pde_addr, pde | A)
        want = entry | A | (D if write else 0)
        if want != entry:
            mem.write_u32(entry_addr, want)
    # A supervisor write to a read-only page is allowed when CR0.WP is clear.
    writable = allow_write or (not user and not wp)
    # Until the page is dirty, keep it read-only in the TLB so the first write walks
    # again and sets D, as the hardware does.
    if not write and not entry & D:
        writable = False
    return Translation(gpa, writable, allow_user)
