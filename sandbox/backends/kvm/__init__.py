"""The KVM backend: guest code runs on the host CPU through Linux's /dev/kvm.

abi        the kernel's structures and ioctl numbers, in ctypes
probe      what this machine offers (``sandbox doctor``, the start-up line of ``sandbox run``)
vm         one VM: its file descriptor and memory slots (memslots: frame table -> slots)
vcpu       KvmVCpu, the VCpuBackend (registers, segments, kick, io_rip: its parts)
fallback   kvm_pvm only: what the sandbox does where that host's KVM falls short
           (emulate, iret, arch_cpu: its helpers; pvm_limits: what cannot be done)
kvm_bench  ``measure()`` for ``sandbox bench --backend kvm``

See docs/kvm.md.
"""
