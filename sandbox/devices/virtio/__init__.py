"""Paravirtual devices: virtio over the MMIO transport (as Firecracker gives its guests).

A virtio device has no registers that mimic real hardware. The guest driver and the
device share rings of buffer descriptors in guest memory (virtqueues); the guest
exits to the hypervisor only to say "there is work" (a write to QueueNotify) and the
device answers with one interrupt for many buffers. That is why a paravirtual disk
costs far fewer exits per KiB than the emulated ATA disk.

Spec: OASIS "Virtual I/O Device (VIRTIO) Version 1.2", sections 2.7 (split
virtqueues) and 4.2 (virtio over MMIO).
"""
