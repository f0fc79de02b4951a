"""Files: atomic writes, content digests, and what a path-or-name value is."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CHUNK = 1 << 20


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create private files (0600) and folders (0700); what we write is for a
# team and a separately running MLflow server to read, so it gets the usual permissions.
_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see either the old content or the new, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def names_a_path(value: str) -> bool:
    """Whether a model/tokenizer reference is a filesystem path rather than a PaddleNLP name."""
    return Path(value).exists() or value.startswith(("/", ".", "~")) or "\\" in value


@contextmanager
def environment_kept() -> Iterator[None]:
    """Restores os.environ afterwards: importing paddle sets OMP_NUM_THREADS=1 and CUSTOM_DEVICE_ROOT,
    which every later child process (Ray workers, joblib jobs, a serving process) would inherit."""
    before = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)
