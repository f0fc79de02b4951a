"""run.py in a Python where one package is not installed: its path finder does not find it, so
`import NAME` raises ModuleNotFoundError and importlib.util.find_spec says None, as without the extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline import PROJECT_ROOT

_WITHOUT = """
import importlib.machinery, runpy, sys

missing = sys.argv.pop(1)

class PathFinderWithout(importlib.machinery.PathFinder):
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] == missing:
            return None
        return super().find_spec(name, path, target)

sys.meta_path = [PathFinderWithout if f is importlib.machinery.PathFinder else f for f in sys.meta_path]
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_without(package: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`python run.py ARGS` from `cwd`, as if `package` were not installed."""
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT, package, str(PROJECT_ROOT / "run.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
