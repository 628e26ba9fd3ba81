"""Segment registers as KVM wants them: selector *plus* the hidden descriptor cache.

A real CPU loads base, limit and attributes from the GDT when a selector is loaded
(``mov ds, ax``) and keeps them in a hidden cache. KVM_SET_SREGS sets the cache
directly, so the hypervisor must do the CPU's job: in real mode the base is
selector * 16 and the limit 64 KiB; in protected mode the fields come from the
descriptor in the guest's GDT.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from sandbox.backends.kvm.abi import kvm_segment
from sandbox.backends.kvm.errors import KvmError
from sandbox.vm.descriptors import parse_segment

if TYPE_CHECKING:
    from sandbox.vm.descriptors import Segment
    from sandbox.vm.memory import GuestMemory

TYPE_DATA_RW_ACCESSED = 0x3     # read/write data
TYPE_CODE_RX_ACCESSED = 0xB     # execute/read code
TYPE_LDT = 0x2
TYPE_TSS32_BUSY = 0xB


def real_mode(selector: int, code: bool = False) -> kvm_segment:
    """A segment as real mode sees it: base = selector << 4, 64 KiB limit, 16-bit."""
    return kvm_segment(base=(selector & 0xFFFF) << 4, limit=0xFFFF, selector=selector & 0xFFFF,
                       type=TYPE_CODE_RX_ACCESSED if code else TYPE_DATA_RW_ACCESSED,
                       present=1, dpl=0, db=0, s=1, l=0, g=0, avl=0, unusable=0)


def from_gdt(memory: "GuestMemory", gdt_base: int, gdt_limit: int, selector: int) -> kvm_segment:
    """The descriptor cache the CPU would load for ``selector`` (paging must be off,
    or the GDT identity-mapped: ``gdt_base`` is read as a guest-physical address)."""
    if selector & ~3 == 0:
        return null(selector)
    if selector & 4:
        raise KvmError(f"selector {selector:#x} points into an LDT; only GDT selectors are supported")
    index = selector & ~7
    if index + 7 > gdt_limit:
        raise KvmError(f"selector {selector:#x} is beyond the GDT limit {gdt_limit:#x}")
    return from_descriptor(selector, parse_segment(memory.read(gdt_base + index, 8)))


def from_descriptor(selector: int, desc: "Segment") -> kvm_segment:
    """The descriptor cache for a code or data descriptor, as the CPU fills it."""
    if not desc.present or not desc.access & 0x10:
        raise KvmError(f"descriptor {selector:#x} is not a present code or data segment")
    return kvm_segment(
        base=desc.base, limit=desc.limit, selector=selector,
        type=(desc.access & 0xF) | 1,     # the CPU sets the accessed bit when it loads one
        present=1, dpl=desc.dpl, s=1,
        db=(desc.flags >> 2) & 1, l=(desc.flags >> 1) & 1, g=(desc.flags >> 3) & 1,
        avl=desc.flags & 1, unusable=0)


def null(selector: int = 0) -> kvm_segment:
    """A data segment register holding the null selector: any access through it faults."""
    return kvm_segment(selector=selector, unusable=1)


def reset_tr() -> kvm_segment:
    """A task register good enough for VM entry (a busy 32-bit TSS at 0) for a guest
    that never switches tasks; a guest that loads its own with ``ltr`` replaces it."""
    return kvm_segment(base=0, limit=0xFFFF, selector=0, type=TYPE_TSS32_BUSY, present=1, s=0)


def reset_ldt() -> kvm_segment:
    return kvm_segment(base=0, limit=0xFFFF, selector=0, type=TYPE_LDT, present=1, s=0)
