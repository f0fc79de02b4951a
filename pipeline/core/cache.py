"""Content-addressed artifact cache.

An artifact lives in `<cache_dir>/<kind>/<key>/`, where the key hashes everything that
determines its content (input files, options, tool versions). It is built in a temporary
folder and renamed into place, under a per-key file lock: a killed build leaves no
half-written artifact and parallel jobs build each artifact once. A manifest of its files'
sizes, modification times and hashes is written at build time and checked at every use
(sizes and times; a hash only where a time changed): an entry damaged on disk is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from pipeline.core.files import FILE_MODE, FOLDER_MODE, file_digest

MANIFEST_FILE = ".manifest.json"
log = logging.getLogger(__name__)


def installed_version(distribution: str) -> str:
    """A package's version for cache keys and run tags, without importing it (paddle takes seconds)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


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


def _write_manifest(folder: Path) -> None:
    entries = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        stat = path.stat()
        entries[str(path.relative_to(folder))] = {
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "sha256": file_digest(path),
        }
    (folder / MANIFEST_FILE).write_text(json.dumps(entries, indent=1) + "\n", encoding="utf-8")


def damage(folder: Path) -> str | None:
    """What is wrong with a cache entry on disk (None: intact), checked against its manifest."""
    try:
        entries = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no readable manifest"
    for name, expected in entries.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            return f"{name} is missing"
        if stat.st_size != expected["size"]:
            return f"{name} has {stat.st_size} bytes, {expected['size']} were written"
        if stat.st_mtime_ns != expected["mtime_ns"] and file_digest(path) != expected["sha256"]:
            return f"{name} changed after it was written"
    return None


def _open_permissions(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(FOLDER_MODE if path.is_dir() else FILE_MODE)


def cached_artifact(cache_dir: Path, kind: str, key: str, build: Callable[[Path], None]) -> tuple[Path, bool]:
    """Returns (folder, built_now); `build(tmp)` fills a fresh folder only on a cache miss."""
    final = Path(cache_dir) / kind / key
    if final.is_dir() and damage(final) is None:
        return final, False
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if final.is_dir():
            problem = damage(final)
            if problem is None:
                return final, False
            log.warning("cache entry %s is damaged (%s): rebuilding it", final, problem)
            shutil.rmtree(final)
        # Temporary folders of builds that were killed: ours to clear, since we hold the lock.
        for stale in final.parent.glob(f".{key}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        try:
            build(tmp)
            _write_manifest(tmp)
            _open_permissions(tmp)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True
