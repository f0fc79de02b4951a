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


class FolderInUse(Exception):
    """Another process holds the folder: its pid and host, where it wrote them."""


@contextmanager
def sole_writer(folder: Path) -> Iterator[None]:
    """One process writes `folder` at a time: a lock inside it, held while the body runs.

    The lock is the kernel's (flock): a process that dies, even by SIGKILL, releases it, so a stale
    lock file never blocks the next writer. The holder's pid and host are written beside it.
    """
    import platform

    from filelock import FileLock, Timeout

    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / ".writer.lock"))
    holder = folder / ".writer"
    try:
        lock.acquire(timeout=0)
    except Timeout:
        who = holder.read_text(encoding="utf-8").strip() if holder.is_file() else "another process"
        raise FolderInUse(who) from None
    try:
        atomic_write_text(holder, f"process {os.getpid()} on host {platform.node()}\n")
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()
