"""A finished run.py ends without the interpreter's module teardown, after every exit handler."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline import PROJECT_ROOT

SCRIPT = """
import atexit, logging, sys
from pipeline.quick_exit import QuickExit

quick_exit = QuickExit()
out = sys.argv[1]


class Teardown:
    def __del__(self, open=open, out=out):  # runs when the interpreter tears down this module
        open(out + ".teardown", "w").close()


teardown = Teardown()
logging.basicConfig(filename=out + ".log", level=logging.INFO)
logging.info("logged last")  # flushed by logging's own exit handler, registered after ours
atexit.register(lambda: open(out + ".handler", "w").close())
print("printed")
if sys.argv[2] == "finished":
    quick_exit.arm()
else:
    sys.exit(3)
"""


def run(tmp_path: Path, outcome: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / outcome), outcome],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_finished_process_runs_every_exit_handler_and_skips_the_teardown(tmp_path: Path) -> None:
    result = run(tmp_path, "finished")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "printed\n"
    assert (tmp_path / "finished.handler").exists()
    assert "logged last" in (tmp_path / "finished.log").read_text()
    assert not (tmp_path / "finished.teardown").exists()


def test_a_failing_process_exits_the_usual_way_with_its_status(tmp_path: Path) -> None:
    result = run(tmp_path, "failed")
    assert result.returncode == 3
    assert (tmp_path / "failed.handler").exists()
    assert (tmp_path / "failed.teardown").exists()
