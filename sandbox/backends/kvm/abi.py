"""The KVM userspace ABI, written out in Python: structures, ioctl numbers, constants.

There is no Python binding for KVM, and none is needed: KVM is a character device
(/dev/kvm) driven by ``ioctl()`` calls on three kinds of file descriptor:

    system fd  (open("/dev/kvm"))      KVM_GET_API_VERSION, KVM_CREATE_VM, KVM_CHECK_EXTENSION
    VM fd      (from KVM_CREATE_VM)    KVM_SET_USER_MEMORY_REGION, KVM_CREATE_VCPU, ...
    vCPU fd    (from KVM_CREATE_VCPU)  KVM_RUN, KVM_GET_REGS, KVM_INTERRUPT, ...

plus one shared page per vCPU, ``struct kvm_run``, that the vCPU fd is mmap()ed to:
KVM writes the exit reason and its details there, userspace writes the answers back.

Every structure below is a ``ctypes.Structure`` with the field names of the kernel
headers (include/uapi/linux/kvm.h, arch/x86/include/uapi/asm/kvm.h), so this file can
be read side by side with the headers and with the KVM API documentation,
Documentation/virt/kvm/api.rst (cited as "api.rst, <section title>"). The ioctl
numbers are computed the way the kernel's _IO/_IOR/_IOW/_IOWR macros compute them:
the direction, the argument size, the "type" byte 0xAE (KVMIO) and a number. The
size is part of the number, so a structure of the wrong size gives a different
ioctl, which the kernel rejects with ENOTTY: tests/test_kvm_abi.py checks them.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import c_uint8 as u8, c_uint16 as u16, c_uint32 as u32, c_uint64 as u64

# --- the ioctl number encoding (include/uapi/asm-generic/ioctl.h) -----------------------
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS        # 8
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS    # 16
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS     # 30
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2         # WRITE: userspace -> kernel


def _IOC(direction: int, kind: int, nr: int, size: int) -> int:
    return (direction << _IOC_DIRSHIFT) | (kind << _IOC_TYPESHIFT) | \
        (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


def _IO(kind: int, nr: int) -> int:
    return _IOC(_IOC_NONE, kind, nr, 0)


def _IOR(kind: int, nr: int, ctype: type) -> int:
    return _IOC(_IOC_READ, kind, nr, ctypes.sizeof(ctype))


def _IOW(kind: int, nr: int, ctype: type) -> int:
    return _IOC(_IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


def _IOWR(kind: int, nr: int, ctype: type) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, kind, nr, ctypes.sizeof(ctype))


def ioc_size(number: int) -> int:
    """The argument size encoded in an ioctl number (what the kernel will copy)."""
    return (number >> _IOC_SIZESHIFT) & ((1 << _IOC_SIZEBITS) - 1)


KVMIO = 0xAE
KVM_API_VERSION = 12            # api.rst, KVM_GET_API_VERSION: "...should always be 12"


# --- registers (arch/x86/include/uapi/asm/kvm.h) ------------------------------------------
class kvm_regs(ctypes.Structure):
    """api.rst, KVM_GET_REGS: the general registers, 64 bits wide even for a 32-bit guest."""
    _fields_ = [(name, u64) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class kvm_segment(ctypes.Structure):
    """A segment register *with its hidden descriptor cache*: the CPU uses base, limit
    and the attribute bits, not the selector, to translate addresses."""
    _fields_ = [
        ("base", u64), ("limit", u32), ("selector", u16),
        ("type", u8),            # descriptor type nibble (code/data, readable, accessed...)
        ("present", u8), ("dpl", u8),
        ("db", u8),              # default operand size: 0 = 16-bit, 1 = 32-bit
        ("s", u8),               # 1 = code/data segment, 0 = system (TSS, LDT)
        ("l", u8),               # 64-bit code segment
        ("g", u8),               # granularity (limit already scaled to bytes here)
        ("avl", u8), ("unusable", u8), ("padding", u8)]


class kvm_dtable(ctypes.Structure):
    """GDTR / IDTR: base and limit of a descriptor table."""
    _fields_ = [("base", u64), ("limit", u16), ("padding", u16 * 3)]


KVM_NR_INTERRUPTS = 256


class kvm_sregs(ctypes.Structure):
    """api.rst, KVM_GET_SREGS: segments, descriptor tables, control registers."""
    _fields_ = [(name, kvm_segment) for name in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")] + [
        ("gdt", kvm_dtable), ("idt", kvm_dtable),
        ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64), ("cr8", u64),
        ("efer", u64), ("apic_base", u64),
        ("interrupt_bitmap", u64 * ((KVM_NR_INTERRUPTS + 63) // 64))]


class kvm_vcpu_events_exception(ctypes.Structure):
    _fields_ = [("injected", u8), ("nr", u8), ("has_error_code", u8), ("pending", u8),
                ("error_code", u32)]


class kvm_vcpu_events_interrupt(ctypes.Structure):
    _fields_ = [("injected", u8), ("nr", u8), ("soft", u8),
                ("shadow", u8)]      # STI / MOV SS interrupt shadow: no interrupt this instruction


class kvm_vcpu_events_nmi(ctypes.Structure):
    _fields_ = [("injected", u8), ("pending", u8), ("masked", u8), ("pad", u8)]


class kvm_vcpu_events_smi(ctypes.Structure):
    _fields_ = [("smm", u8), ("pending", u8), ("smm_inside_nmi", u8), ("latched_init", u8)]


class kvm_vcpu_events(ctypes.Structure):
    """api.rst, KVM_GET_VCPU_EVENTS: events in flight (queued exception or interrupt,
    interrupt shadow, NMI state) that are not visible in the registers."""
    _fields_ = [
        ("exception", kvm_vcpu_events_exception), ("interrupt", kvm_vcpu_events_interrupt),
        ("nmi", kvm_vcpu_events_nmi), ("sipi_vector", u32), ("flags", u32),
        ("smi", kvm_vcpu_events_smi), ("triple_fault_pending", u8), ("reserved", u8 * 26),
        ("exception_has_payload", u8), ("exception_payload", u64)]


class kvm_translation(ctypes.Structure):
    """api.rst, KVM_TRANSLATE: a guest linear address through the guest's own page tables."""
    _fields_ = [("linear_address", u64),                                          # in
                ("physical_address", u64), ("valid", u8), ("writeable", u8),      # out
                ("usermode", u8), ("pad", u8 * 5)]


# --- guest memory ----------------------------------------------------------------------------
KVM_MEM_LOG_DIRTY_PAGES = 1 << 0    # track writes for KVM_GET_DIRTY_LOG
KVM_MEM_READONLY = 1 << 1           # writes exit to userspace as KVM_EXIT_MMIO


class kvm_userspace_memory_region(ctypes.Structure):
    """api.rst, KVM_SET_USER_MEMORY_REGION: guest-physical [guest_phys_addr, +memory_size)
    is backed by this process's memory at userspace_addr. memory_size 0 deletes the slot."""
    _fields_ = [("slot", u32), ("flags", u32), ("guest_phys_addr", u64),
                ("memory_size", u64), ("userspace_addr", u64)]


class kvm_dirty_log(ctypes.Structure):
    """api.rst, KVM_GET_DIRTY_LOG: one bit per page of the slot, set if written since the
    last call (the call also clears the log)."""
    _fields_ = [("slot", u32), ("padding1", u32), ("dirty_bitmap", u64)]   # a pointer


class kvm_enable_cap(ctypes.Structure):
    """api.rst, KVM_ENABLE_CAP: turn on an optional behaviour (``cap``) with arguments."""
    _fields_ = [("cap", u32), ("flags", u32), ("args", u64 * 4), ("pad", u8 * 64)]


# --- interrupts and debugging ------------------------------------------------------------
class kvm_interrupt(ctypes.Structure):
    """api.rst, KVM_INTERRUPT: queue external interrupt ``irq`` (a vector, 0-255) for
    delivery at the next guest entry. Only without an in-kernel interrupt controller."""
    _fields_ = [("irq", u32)]


KVM_GUESTDBG_ENABLE = 0x00000001
KVM_GUESTDBG_SINGLESTEP = 0x00000002


class kvm_guest_debug_arch(ctypes.Structure):
    _fields_ = [("debugreg", u64 * 8)]


class kvm_guest_debug(ctypes.Structure):
    """api.rst, KVM_SET_GUEST_DEBUG: single-step and breakpoints, exiting as KVM_EXIT_DEBUG."""
    _fields_ = [("control", u32), ("pad", u32), ("arch", kvm_guest_debug_arch)]


class kvm_debug_exit_arch(ctypes.Structure):
    _fields_ = [("exception", u32), ("pad", u32), ("pc", u64), ("dr6", u64), ("dr7", u64)]


# --- struct kvm_run: the page shared by KVM and userspace (api.rst, "The kvm_run structure")
KVM_EXIT_IO_IN, KVM_EXIT_IO_OUT = 0, 1


class kvm_run_io(ctypes.Structure):
    """KVM_EXIT_IO: ``count`` accesses of ``size`` bytes to ``port``; the data sits in this
    same page at ``data_offset`` (count > 1 for string instructions: rep outsb / insw)."""
    _fields_ = [("direction", u8), ("size", u8), ("port", u16), ("count", u32),
                ("data_offset", u64)]


class kvm_run_mmio(ctypes.Structure):
    """KVM_EXIT_MMIO: a guest access to a physical address no writable slot backs."""
    _fields_ = [("phys_addr", u64), ("data", u8 * 8), ("len", u32), ("is_write", u8)]


class kvm_run_fail_entry(ctypes.Structure):
    """KVM_EXIT_FAIL_ENTRY: the hardware refused to enter the guest (invalid state)."""
    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class kvm_run_internal(ctypes.Structure):
    """KVM_EXIT_INTERNAL_ERROR: KVM itself could not go on (e.g. it cannot emulate an
    instruction); ``suberror`` says why, ``data[:ndata]`` gives details."""
    _fields_ = [("suberror", u32), ("ndata", u32), ("data", u64 * 16)]


class kvm_run_system_event(ctypes.Structure):
    """KVM_EXIT_SYSTEM_EVENT: the guest asked for shutdown/reset (e.g. via PSCI or firmware)."""
    _fields_ = [("type", u32), ("ndata", u32), ("data", u64 * 16)]


class kvm_run_hw(ctypes.Structure):
    """KVM_EXIT_UNKNOWN: a hardware exit reason KVM does not know how to handle."""
    _fields_ = [("hardware_exit_reason", u64)]


class kvm_run_exit(ctypes.Union):
    """The exit details: which member is valid depends on ``exit_reason``."""
    _fields_ = [("hw", kvm_run_hw), ("fail_entry", kvm_run_fail_entry),
                ("debug", kvm_debug_exit_arch), ("io", kvm_run_io), ("mmio", kvm_run_mmio),
                ("internal", kvm_run_internal), ("system_event", kvm_run_system_event),
                ("padding", ctypes.c_char * 256)]


class kvm_run(ctypes.Structure):
    _fields_ = [
        # in (userspace -> KVM)
        ("request_interrupt_window", u8),   # exit with IRQ_WINDOW_OPEN once an interrupt can be injected
        ("immediate_exit", u8),             # KVM_RUN returns EINTR at once (a race-free "stop")
        ("padding1", u8 * 6),
        # out (KVM -> userspace)
        ("exit_reason", u32),
        ("ready_for_interrupt_injection", u8),  # KVM_INTERRUPT would be delivered right now
        ("if_flag", u8),                        # the guest's RFLAGS.IF at the exit
        ("flags", u16),
        # in / out
        ("cr8", u64), ("apic_base", u64),
        ("exit", kvm_run_exit),
        ("kvm_valid_regs", u64), ("kvm_dirty_regs", u64),
        ("s", ctypes.c_char * 2048)]        # synced registers (KVM_CAP_SYNC_REGS), unused here


# Exit reasons (api.rst, "The kvm_run structure", exit_reason). Only x86 ones we may see.
KVM_EXIT_UNKNOWN = 0
KVM_EXIT_EXCEPTION = 1
KVM_EXIT_IO = 2
KVM_EXIT_HYPERCALL = 3
KVM_EXIT_DEBUG = 4
KVM_EXIT_HLT = 5
KVM_EXIT_MMIO = 6
KVM_EXIT_IRQ_WINDOW_OPEN = 7
KVM_EXIT_SHUTDOWN = 8
KVM_EXIT_FAIL_ENTRY = 9
KVM_EXIT_INTR = 10
KVM_EXIT_SET_TPR = 11
KVM_EXIT_TPR_ACCESS = 12
KVM_EXIT_NMI = 16
KVM_EXIT_INTERNAL_ERROR = 17
KVM_EXIT_SYSTEM_EVENT = 24
KVM_EXIT_IOAPIC_EOI = 26
KVM_EXIT_X86_RDMSR = 29
KVM_EXIT_X86_WRMSR = 30
KVM_EXIT_DIRTY_RING_FULL = 31
KVM_EXIT_X86_BUS_LOCK = 33
KVM_EXIT_NOTIFY = 37

EXIT_NAMES = {value: name for name, value in globals().items()
              if name.startswith("KVM_EXIT_") and name not in ("KVM_EXIT_IO_IN", "KVM_EXIT_IO_OUT")}

# KVM_EXIT_INTERNAL_ERROR suberrors, each with a line a student can read.
INTERNAL_ERRORS = {
    1: "KVM could not emulate an instruction",                     # KVM_INTERNAL_ERROR_EMULATION
    2: "an exception occurred while KVM simulated another one",    # KVM_INTERNAL_ERROR_SIMUL_EX
    3: "an exit happened while delivering an event to the guest",  # KVM_INTERNAL_ERROR_DELIVERY_EV
    4: "the hardware exited for a reason KVM did not expect",      # ..._UNEXPECTED_EXIT_REASON
}

# KVM_EXIT_SYSTEM_EVENT types.
KVM_SYSTEM_EVENT_SHUTDOWN = 1
KVM_SYSTEM_EVENT_RESET = 2
KVM_SYSTEM_EVENT_CRASH = 3

# --- capabilities (api.rst, KVM_CHECK_EXTENSION; numbers from include/uapi/linux/kvm.h) ---
KVM_CAP_IRQCHIP = 0
KVM_CAP_HLT = 1
KVM_CAP_USER_MEMORY = 3
KVM_CAP_SET_TSS_ADDR = 4
KVM_CAP_EXT_CPUID = 7
KVM_CAP_NR_VCPUS = 9
KVM_CAP_NR_MEMSLOTS = 10
KVM_CAP_SYNC_MMU = 16
KVM_CAP_SET_GUEST_DEBUG = 23
KVM_CAP_SET_IDENTITY_MAP_ADDR = 37
KVM_CAP_INTERNAL_ERROR_DATA = 40
KVM_CAP_VCPU_EVENTS = 41
KVM_CAP_MAX_VCPUS = 66
KVM_CAP_READONLY_MEM = 81
KVM_CAP_IMMEDIATE_EXIT = 136
KVM_CAP_EXIT_ON_EMULATION_FAILURE = 204     # every emulation failure exits, even at CPL > 0

# --- ioctls on the system fd (/dev/kvm) --------------------------------------------------
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)          # api.rst, KVM_GET_API_VERSION
KVM_CREATE_VM = _IO(KVMIO, 0x01)                # api.rst, KVM_CREATE_VM (arg: machine type 0)
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)          # api.rst, KVM_CHECK_EXTENSION (also on a VM fd)
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)       # api.rst, KVM_GET_VCPU_MMAP_SIZE

# --- ioctls on a VM fd -------------------------------------------------------------------
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)                                   # api.rst, KVM_CREATE_VCPU
KVM_GET_DIRTY_LOG = _IOW(KVMIO, 0x42, kvm_dirty_log)                 # api.rst, KVM_GET_DIRTY_LOG
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, kvm_userspace_memory_region)  # api.rst, same name
KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47)                                  # api.rst, KVM_SET_TSS_ADDR
KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, u64)                   # api.rst, same name
KVM_ENABLE_CAP = _IOW(KVMIO, 0xA3, kvm_enable_cap)                   # api.rst, KVM_ENABLE_CAP

# --- ioctls on a vCPU fd -----------------------------------------------------------------
KVM_RUN = _IO(KVMIO, 0x80)                                           # api.rst, KVM_RUN
KVM_GET_REGS = _IOR(KVMIO, 0x81, kvm_regs)                           # api.rst, KVM_GET_REGS
KVM_SET_REGS = _IOW(KVMIO, 0x82, kvm_regs)                           # api.rst, KVM_SET_REGS
KVM_GET_SREGS = _IOR(KVMIO, 0x83, kvm_sregs)                         # api.rst, KVM_GET_SREGS
KVM_SET_SREGS = _IOW(KVMIO, 0x84, kvm_sregs)                         # api.rst, KVM_SET_SREGS
KVM_TRANSLATE = _IOWR(KVMIO, 0x85, kvm_translation)                  # api.rst, KVM_TRANSLATE
KVM_INTERRUPT = _IOW(KVMIO, 0x86, kvm_interrupt)                     # api.rst, KVM_INTERRUPT
KVM_SET_GUEST_DEBUG = _IOW(KVMIO, 0x9B, kvm_guest_debug)             # api.rst, KVM_SET_GUEST_DEBUG
KVM_GET_VCPU_EVENTS = _IOR(KVMIO, 0x9F, kvm_vcpu_events)             # api.rst, KVM_GET_VCPU_EVENTS

# Structures paired with the ioctl that carries them, for the size checks in the tests.
IOCTL_STRUCTS = {
    "KVM_GET_DIRTY_LOG": (KVM_GET_DIRTY_LOG, kvm_dirty_log),
    "KVM_SET_USER_MEMORY_REGION": (KVM_SET_USER_MEMORY_REGION, kvm_userspace_memory_region),
    "KVM_SET_IDENTITY_MAP_ADDR": (KVM_SET_IDENTITY_MAP_ADDR, u64),
    "KVM_ENABLE_CAP": (KVM_ENABLE_CAP, kvm_enable_cap),
    "KVM_GET_REGS": (KVM_GET_REGS, kvm_regs),
    "KVM_SET_REGS": (KVM_SET_REGS, kvm_regs),
    "KVM_GET_SREGS": (KVM_GET_SREGS, kvm_sregs),
    "KVM_SET_SREGS": (KVM_SET_SREGS, kvm_sregs),
    "KVM_TRANSLATE": (KVM_TRANSLATE, kvm_translation),
    "KVM_INTERRUPT": (KVM_INTERRUPT, kvm_interrupt),
    "KVM_SET_GUEST_DEBUG": (KVM_SET_GUEST_DEBUG, kvm_guest_debug),
    "KVM_GET_VCPU_EVENTS": (KVM_GET_VCPU_EVENTS, kvm_vcpu_events),
}


# --- the system call ---------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
_ioctl = _libc.ioctl
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_ioctl.restype = ctypes.c_int


def ioctl(fd: int, request: int, arg: "int | ctypes._CData" = 0) -> int:
    """ioctl(2) through libc. A ctypes structure is passed by address (the kernel reads
    and/or writes it in place); an int is passed as an unsigned long. The GIL is released
    during the call, so several vCPU threads can be inside KVM_RUN at once. Raises
    OSError with the errno (EINTR included: never retried here, the caller decides)."""
    # ``arg`` stays bound for the whole call: a temporary structure must not be freed
    # before the kernel has read it.
    address = arg if isinstance(arg, int) else ctypes.addressof(arg)
    result = _ioctl(fd, request, address)
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))
    return result
