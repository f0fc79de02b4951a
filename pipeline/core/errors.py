"""User-facing errors: each names what is wrong and where, and run.py prints it as one line."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class PipelineError(Exception):
    """Base class for errors caused by the user's input or environment, not by a bug."""


class ConfigError(PipelineError):
    """A configuration value is out of range or inconsistent."""


class DatasetError(PipelineError):
    """A dataset file is missing or malformed."""

    def __init__(self, path: Path | str, why: str, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        self.why = why
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {why}")

    def __reduce__(self) -> tuple:  # pickled by its fields: a Ray actor sends it back as it is
        return (type(self), (self.path, self.why, self.line))


class ModelError(PipelineError):
    """A model file is missing, unreadable or cannot be converted."""


class DeviceError(PipelineError):
    """The requested device or execution provider is not usable."""


class UnsupportedCombination(ConfigError):
    """Options that are each valid but do not run together here (an engine and a precision, a
    precision and this CPU): a single run stops, a sweep records the job SKIPPED."""


class WriteError(PipelineError):
    """A file the job writes could not be written for a reason the user must fix (a full disk, a
    quota, a read-only file system, permissions): the file and what to do, in one line."""

    def __init__(
        self,
        path: Path | str,
        why: str,
        fix: str,
        then: str = "run the same command again (or write elsewhere)",
    ) -> None:
        self.path = Path(path)
        self.why = why
        self.fix = fix  # what the user does: "free some space there"
        self.then = then
        super().__init__(f"cannot write {self.path}: {why}; {fix}, then {then}")

    def __reduce__(self) -> tuple:  # pickled by its fields: a Ray actor sends it back as it is
        return (type(self), (self.path, self.why, self.fix, self.then))


class TrackingError(PipelineError):
    """The MLflow tracking store cannot be reached or refused a write."""


class MissingExtra(PipelineError):
    """A feature whose optional dependencies (a pyproject extra) are not installed."""


# What each extra of pyproject.toml brings that this project imports.
EXTRA_MODULES = {
    "cpu": ("onnxruntime",),
    "paddlenlp": ("paddlenlp",),
    "demo": ("paddlenlp", "sklearn", "threadpoolctl"),
    "openvino": ("openvino", "ml_dtypes"),
    "ray": ("ray",),
    "optuna": ("optuna",),
    "server": ("flask_wtf", "psycopg"),
    "fast-tokenizer": ("fast_tokenizer",),
}


def require_extra(extra: str, feature: str) -> None:
    """Stops a feature whose extra is missing with one line naming the extra to install."""
    missing = [name for name in EXTRA_MODULES[extra] if importlib.util.find_spec(name) is None]
    if missing:
        install = (
            "pip install -e '.[cpu]' (or '.[gpu]')" if extra == "cpu" else f"pip install -e '.[cpu,{extra}]'"
        )
        raise MissingExtra(f"{feature} needs the {extra} extra: {install} (missing: {', '.join(missing)})")


def check_choice(value: str, allowed: tuple[str, ...] | list[str], key: str) -> None:
    """A config value that must be one of a few names."""
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")


class InputError(PipelineError):
    """Inputs sent to a model (a serving request) are not what its task reads."""
