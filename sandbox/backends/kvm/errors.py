"""Errors of the KVM backend that a user can cause (bad register name, slot exhaustion)."""
from sandbox.errors import SandboxError


class KvmError(SandboxError):
    """The KVM backend cannot do what was asked; the message names the problem."""
