"""What a worker process has loaded, asked from the worker (this module imports nothing of the
pipeline, so unpickling it there loads nothing)."""

from __future__ import annotations

import os
import sys
import time


def loaded(module: str, seconds: float = 0.5) -> tuple[int, bool]:
    """(the worker's process id, whether it has imported `module`), after `seconds` (so that each
    worker of a pool takes some of these tasks)."""
    time.sleep(seconds)
    return os.getpid(), module in sys.modules


_held: list[bytearray] = []


def grow(megabytes: int, seconds: float) -> int:
    """Keeps `megabytes` more in the worker (as a job's model and data would), after `seconds`;
    returns the worker's process id."""
    time.sleep(seconds)
    _held.append(bytearray(megabytes * 2**20))
    return os.getpid()
