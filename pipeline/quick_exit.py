"""Ending a finished `python run.py` without the interpreter's teardown of its modules.

After the job is done (files closed, MLflow run stored), CPython still frees every object of
ONNX Runtime, NumPy, matplotlib and Hydra, module by module: ~0.3 s of a cached run's ~3 s.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn


def exit_without_teardown() -> NoReturn:
    """Ends this process with status 0 once stdout and stderr are flushed, freeing nothing."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe must not change the exit status
            stream.flush()
    os._exit(0)


class QuickExit:
    """Registered before anything else, so its exit handler runs after every library's own
    (atexit runs them last-registered first): logging is flushed, Ray and process pools are shut
    down. Only a process that finished its work (`arm()`) skips the teardown; a failing one exits
    the usual way, with its exit status."""

    def __init__(self) -> None:
        self._armed = False
        atexit.register(self._exit)

    def arm(self) -> None:
        self._armed = True

    def _exit(self) -> None:
        if self._armed:
            exit_without_teardown()
