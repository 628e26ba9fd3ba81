"""Colours and fonts, one table each: layers, VM owners, vCPU and VM states."""
from __future__ import annotations

# Each layer of the seed diagram has a colour family: (fill, border/title, strong accent).
LAYER_COLOURS = {
    "vm": ("#e8f7ec", "#1b7a3a", "#34a853"),
    "hypervisor": ("#fff1e0", "#b45309", "#f59e0b"),
    "hardware": ("#e6efff", "#1e40af", "#3b82f6"),
}
LAYER_TITLES = {
    "vm": "VIRTUAL MACHINES  -  the guests",
    "hypervisor": "HYPERVISOR  -  shares the hardware among the VMs",
    "hardware": "HARDWARE  -  the physical host",
}

# VM n (in config order) owns frames drawn in OWNER_COLOURS[n % len]; plots use the same.
OWNER_COLOURS = ("#2563eb", "#ea580c", "#16a34a", "#db2777", "#0891b2", "#ca8a04",
                 "#7c2d12", "#4f46e5", "#65a30d", "#be123c")
FREE_COLOUR = "#e5e7eb"
SHARED_COLOUR = "#9333ea"
FOREIGN_COLOUR = "#6b7280"
SWAPPED_COLOUR = "#111827"

VCPU_STATE_COLOURS = {
    "created": "#d1d5db", "runnable": "#fde047", "running": "#4ade80",
    "halted": "#93c5fd", "done": "#9ca3af",
}
VM_STATE_COLOURS = {
    "created": "#9ca3af", "running": "#16a34a", "paused": "#d97706",
    "powered_off": "#4b5563", "crashed": "#dc2626", "timed_out": "#ea580c",
}
HIGHLIGHT = "#e11d48"          # a place where an event just happened
SELECTED = "#7c3aed"           # the event clicked in the log
MONO_FAMILY = "DejaVu Sans Mono"
SANS_FAMILY = "DejaVu Sans"


def owner_colour(index: int) -> str:
    """Colour of the VM at ``index`` (0-based, config order)."""
    return OWNER_COLOURS[index % len(OWNER_COLOURS)]
