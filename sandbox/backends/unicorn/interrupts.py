"""Interrupt delivery for Unicorn vCPUs: the shared, backend-neutral code.

Unicorn reports ``int n`` and CPU exceptions to a hook and does NOT vector through the
IVT or IDT, so the backend delivers them in software. That code is architectural, not
Unicorn's, and the KVM backend needs it too (on kvm_pvm hosts), so it lives in
``sandbox.vm.interrupt_delivery``; this module keeps the old import path working.
"""
from __future__ import annotations

from sandbox.vm.descriptors import parse_segment
from sandbox.vm.interrupt_delivery import DeliveryFault, TripleFault, deliver

__all__ = ["deliver", "TripleFault", "DeliveryFault", "parse_segment"]
