"""Errors a user can cause. Each one prints as a single line naming the problem."""


class SandboxError(Exception):
    """A problem with the user's input, reported as one line (CLI exit status 2)."""


class ConfigError(SandboxError):
    """A machine config with an unknown key, a bad value or a missing file."""


class ImageError(SandboxError):
    """A disk image or kernel that is missing, unreadable or not bootable."""


class BackendUnavailable(SandboxError):
    """The requested vCPU backend cannot run on this machine."""
