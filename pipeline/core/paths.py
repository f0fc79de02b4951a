"""The paths a user gives, checked before any work: each mistake is one line naming the path, the
key it came from and what was expected there."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.errors import ConfigError


def expect_file(path: Path, key: str, expected: str) -> None:
    if path.is_dir():
        raise ConfigError(f"{key}={path} is a folder; expected {expected}")
    if not path.is_file():
        raise ConfigError(f"{key}={path} does not exist; expected {expected}")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{key}={path} cannot be read (permission denied); expected {expected}")


def expect_folder(path: Path, key: str, expected: str) -> None:
    if path.is_file():
        raise ConfigError(f"{key}={path} is a file; expected {expected}")
    if not path.is_dir():
        raise ConfigError(f"{key}={path} does not exist; expected {expected}")


def expect_writable_folder(path: Path, key: str) -> None:
    """A folder the job will write: it exists and is writable, or it can be made."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == path else f" (its parent {existing} is a file)"
        raise ConfigError(f"{key}={path}: cannot make a folder there{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" (in {existing})"
        raise ConfigError(f"{key}={path}: cannot write there{where}: permission denied")
