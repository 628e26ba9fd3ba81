"""The KVM ABI module matches the kernel: structure sizes, offsets and ioctl numbers."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from sandbox.backends.kvm import abi
from sandbox.backends.kvm.probe import probe


def test_ioctl_numbers_encode_their_structure_sizes():
    for name, (number, ctype) in abi.IOCTL_STRUCTS.items():
        assert abi.ioc_size(number) == ctypes.sizeof(ctype), name
        assert (number >> 8) & 0xFF == abi.KVMIO, name


# Sizes and offsets from the x86-64 kernel headers (include/uapi/linux/kvm.h, asm/kvm.h).
KERNEL_SIZES = {
    abi.kvm_regs: 144, abi.kvm_segment: 24, abi.kvm_dtable: 16, abi.kvm_sregs: 312,
    abi.kvm_userspace_memory_region: 32, abi.kvm_dirty_log: 16, abi.kvm_interrupt: 4,
    abi.kvm_guest_debug: 72, abi.kvm_vcpu_events: 64, abi.kvm_translation: 24,
    abi.kvm_run: 2352,
}


@pytest.mark.parametrize("ctype", list(KERNEL_SIZES), ids=lambda c: c.__name__)
def test_structure_sizes_match_the_kernel(ctype):
    assert ctypes.sizeof(ctype) == KERNEL_SIZES[ctype]


def test_kvm_run_layout():
    assert abi.kvm_run.exit_reason.offset == 8
    assert abi.kvm_run.exit.offset == 32            # the exit union
    assert abi.kvm_run.kvm_valid_regs.offset == 288
    assert ctypes.sizeof(abi.kvm_run_exit) == 256


def test_well_known_ioctl_numbers():
    # The values every KVM user has seen in strace output.
    assert abi.KVM_GET_API_VERSION == 0xAE00
    assert abi.KVM_CREATE_VM == 0xAE01
    assert abi.KVM_RUN == 0xAE80
    assert abi.KVM_SET_USER_MEMORY_REGION == 0x4020AE46
    assert abi.KVM_GET_REGS == 0x8090AE81
    assert abi.KVM_SET_SREGS == 0x4138AE84


def test_exit_names_are_a_table():
    assert abi.EXIT_NAMES[abi.KVM_EXIT_IO] == "KVM_EXIT_IO"
    assert abi.EXIT_NAMES[abi.KVM_EXIT_SHUTDOWN] == "KVM_EXIT_SHUTDOWN"


HEADER = Path("/usr/include/linux/kvm.h")
PROGRAM = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/kvm.h>
#define S(t) printf(#t " %zu\n", sizeof(struct t))
#define N(n) printf(#n " %lu\n", (unsigned long)(n))
int main(void) {
    S(kvm_regs); S(kvm_sregs); S(kvm_segment); S(kvm_dtable); S(kvm_run);
    S(kvm_userspace_memory_region); S(kvm_dirty_log); S(kvm_interrupt);
    S(kvm_guest_debug); S(kvm_vcpu_events); S(kvm_translation); S(kvm_enable_cap);
    N(KVM_GET_API_VERSION); N(KVM_CREATE_VM); N(KVM_CHECK_EXTENSION);
    N(KVM_GET_VCPU_MMAP_SIZE); N(KVM_CREATE_VCPU); N(KVM_GET_DIRTY_LOG);
    N(KVM_SET_USER_MEMORY_REGION); N(KVM_SET_TSS_ADDR); N(KVM_SET_IDENTITY_MAP_ADDR);
    N(KVM_RUN); N(KVM_GET_REGS); N(KVM_SET_REGS); N(KVM_GET_SREGS); N(KVM_SET_SREGS);
    N(KVM_TRANSLATE); N(KVM_INTERRUPT); N(KVM_SET_GUEST_DEBUG); N(KVM_GET_VCPU_EVENTS);
    N(KVM_ENABLE_CAP); N(KVM_CAP_EXIT_ON_EMULATION_FAILURE);
    N(KVM_EXIT_IO); N(KVM_EXIT_HLT); N(KVM_EXIT_MMIO); N(KVM_EXIT_SHUTDOWN);
    N(KVM_EXIT_FAIL_ENTRY); N(KVM_EXIT_INTR); N(KVM_EXIT_INTERNAL_ERROR); N(KVM_EXIT_SYSTEM_EVENT);
    N(KVM_CAP_USER_MEMORY); N(KVM_CAP_READONLY_MEM); N(KVM_CAP_IMMEDIATE_EXIT);
    N(KVM_CAP_NR_MEMSLOTS); N(KVM_CAP_SET_TSS_ADDR); N(KVM_CAP_VCPU_EVENTS);
    N(KVM_MEM_READONLY); N(KVM_MEM_LOG_DIRTY_PAGES);
    printf("kvm_run.io %zu\n", offsetof(struct kvm_run, io));
    return 0;
}
"""


@pytest.mark.skipif(not HEADER.exists() or shutil.which("gcc") is None,
                    reason="kernel headers or gcc not installed")
def test_everything_matches_the_installed_kernel_headers():
    with tempfile.TemporaryDirectory() as d:
        src, exe = Path(d) / "sizes.c", Path(d) / "sizes"
        src.write_text(PROGRAM)
        subprocess.run(["gcc", "-o", str(exe), str(src)], check=True, capture_output=True)
        out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        name, value = line.rsplit(" ", 1)
        if name == "kvm_run.io":
            assert abi.kvm_run.exit.offset == int(value)
        elif name.startswith("KVM_"):
            assert getattr(abi, name) == int(value), name
        else:
            assert ctypes.sizeof(getattr(abi, name)) == int(value), name


@pytest.mark.kvm
@pytest.mark.skipif(not probe().usable, reason="/dev/kvm does not open")
def test_kernel_agrees_on_the_shared_page_size():
    fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    try:
        assert abi.ioctl(fd, abi.KVM_GET_API_VERSION) == abi.KVM_API_VERSION
        assert abi.ioctl(fd, abi.KVM_GET_VCPU_MMAP_SIZE) >= ctypes.sizeof(abi.kvm_run)
        vm = abi.ioctl(fd, abi.KVM_CREATE_VM, 0)
        try:
            # A one-page slot is accepted; the same number with the wrong argument size
            # is another ioctl, which the kernel does not know.
            page = mmap.mmap(-1, 4096)
            anchor = ctypes.c_char.from_buffer(page)
            abi.ioctl(vm, abi.KVM_SET_USER_MEMORY_REGION, abi.kvm_userspace_memory_region(
                slot=0, guest_phys_addr=0, memory_size=4096, userspace_addr=ctypes.addressof(anchor)))
            with pytest.raises(OSError) as wrong:
                abi.ioctl(vm, abi._IOW(abi.KVMIO, 0x46, ctypes.c_uint64), ctypes.c_uint64())
            assert wrong.value.errno in (errno.ENOTTY, errno.EINVAL)
        finally:
            os.close(vm)
    finally:
        os.close(fd)
