"""Content-addressed artifact cache.

An artifact lives in `<cache_dir>/<kind>/<key>/`, where the key hashes everything that
determines its content (input files, options, tool versions). It is built in a temporary
folder and renamed into place, under a per-key file lock: a killed build leaves no
half-written artifact and parallel jobs build each artifact once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

_CHUNK = 1 << 20


def installed_version(distribution: str) -> str:
    """A package's version for cache keys and run tags, without importing it (paddle takes seconds)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(**parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (paths are hashed by content)."""

    def encode(value: Any) -> Any:
        if isinstance(value, Path):
            return {"file_sha256": file_digest(value)}
        if isinstance(value, dict):
            return {str(k): encode(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [encode(v) for v in value]
        return value

    blob = json.dumps(encode(parts), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def cached_artifact(cache_dir: Path, kind: str, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Returns (folder, built_now); `build(tmp)` fills a fresh folder only on a cache miss."""
    final = Path(cache_dir) / kind / key
    if final.is_dir():
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():
            return final, False
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            build(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see either the old content or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
