"""The core is headless: machine/ and kernel/ load no UI library (DESIGN.md §1).

Each package's modules are imported in a fresh interpreter, which then reports
which forbidden top-level modules ended up in `sys.modules`. The import-linter
contracts in pyproject.toml check the same statically.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

UI_LIBRARIES = ("textual", "prompt_toolkit", "pygments", "rich")

FORBIDDEN = {
    "machine": (*UI_LIBRARIES, "l4tui", "kernel"),
    "kernel": (*UI_LIBRARIES, "l4tui"),
}


def _modules(package_name: str) -> list[str]:
    package = importlib.import_module(package_name)
    found = pkgutil.walk_packages(package.__path__, prefix=f"{package_name}.")
    return [package_name, *sorted(info.name for info in found)]


@pytest.mark.parametrize("package_name", sorted(FORBIDDEN))
def test_core_imports_no_ui(package_name: str) -> None:
    modules = _modules(package_name)
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN[package_name]!r} if m in sys.modules)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [], f"{package_name}/ loaded {proc.stdout.strip()}"
