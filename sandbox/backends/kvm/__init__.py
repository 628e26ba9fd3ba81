"""The KVM backend: guest code runs on the host CPU through Linux's /dev/kvm.

abi       the kernel's structures and ioctl numbers, in ctypes
probe     what this machine offers (``sandbox doctor``)
vm        one VM: its file descriptor and memory slots (memslots: frame table -> slots)
vcpu      KvmVCpu, the VCpuBackend (segments, kick, io_rip: its helpers)

See docs/kvm.md.
"""
