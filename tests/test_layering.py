"""The architecture's rules, enforced: the hypervisor package never imports Qt."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("PySide6", "PyQt5", "PyQt6", "pyqtgraph", "shiboken6", "gui")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_sandbox_never_imports_qt_or_the_gui():
    offenders = {str(p.relative_to(ROOT)): sorted(imports_of(p) & set(FORBIDDEN))
                 for p in (ROOT / "sandbox").rglob("*.py")}
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}


def test_importing_the_api_loads_no_qt():
    import subprocess
    import sys
    code = "import sandbox.api, sandbox.cli.main, sys; print(any(m.startswith(('PySide6','pyqtgraph')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
