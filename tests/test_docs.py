"""The docs stay true: every table the code has is listed where users read."""
from __future__ import annotations

from pathlib import Path

from sandbox.hypervisor.hypercalls import HYPERCALLS

ROOT = Path(__file__).resolve().parent.parent


def test_every_hypercall_is_documented():
    text = (ROOT / "docs" / "hypercalls.md").read_text()
    for number, call in HYPERCALLS.items():
        assert f"| {number:#04x} | {call.name} |" in text, f"docs/hypercalls.md lacks {call.name}"


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```sh") + 1:lines.index("```sh") + 3]
    assert block[0].startswith("python3 -m venv .venv") and "sandbox run" in block[0]
    assert block[1].startswith("bash .ci/run")
