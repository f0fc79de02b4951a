"""Files: atomic writes, content digests, and what a path-or-name value is.

A write that fails for a reason the user must fix (a full disk, a quota, a read-only file system,
permissions) raises `WriteError`: the file, why, and what to do, in one line; the temporary file is
removed, and what was written before stays.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import WriteError

_CHUNK = 1 << 20

# The write failures a user fixes, not the code: what each means and what to do about it.
WRITE_FAILURES = {
    errno.ENOSPC: ("no space left on the device", "free some space there"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space there"),
    errno.EFBIG: ("the file is larger than the file system allows", "choose a file system that allows it"),
    errno.EROFS: ("the file system is read-only", "make it writable"),
    errno.EACCES: ("permission denied", "make it writable"),
    errno.EPERM: ("operation not permitted", "make it writable"),
}


# Those that only a write meets: an OSError from elsewhere (a library's own write) is one of ours
# only with these, since permission errors may come from reading.
_ONLY_WRITES = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}


def write_error(exc: OSError, path: Path | str | None = None) -> WriteError | None:
    """`exc` as the one line a user acts on, where it is one of WRITE_FAILURES (None: not one).
    It names `path`, the file being written; without it, the file the OSError names, where the
    error is one that only writes meet."""
    where = path if path is not None else exc.filename
    failure = WRITE_FAILURES.get(exc.errno or 0)
    if failure is None or where is None or (path is None and exc.errno not in _ONLY_WRITES):
        return None
    why, fix = failure
    return WriteError(os.fsdecode(where), why, fix)


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turns a failed write of `path` into a WriteError (see WRITE_FAILURES)."""
    try:
        yield
    except OSError as exc:
        if (error := write_error(exc, path)) is not None:
            raise error from None
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp and mkdtemp create private files (0600) and folders (0700); what we write is for a
# team and a separately running MLflow server to read, so it gets the usual permissions.
_UMASK = _current_umask()
FILE_MODE = 0o666 & ~_UMASK
FOLDER_MODE = 0o777 & ~_UMASK


# The digests this process took, by the file's identity (device, inode, size, modification and
# change times): a sweep's worker keys every job's cached models on the same model and data files
# (about 0.05 s a job for the demo model; SHA-256 reads about 1 GB/s here, so 0.5 s for 470 MB of
# weights). A file written again gets new times, and an atomic write a new inode.
_digests: dict[tuple[int, int, int, int, int], str] = {}


def file_digest(path: Path) -> str:
    """The SHA-256 of the file's content, hex."""
    stat = os.stat(path)
    identity = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    if (known := _digests.get(identity)) is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    _digests[identity] = hexdigest = digest.hexdigest()
    return hexdigest


def load_yaml(text: str) -> Any:
    """yaml.safe_load, with libyaml's parser where PyYAML has it: 5 times faster on a job's config,
    which a sweep reads for every job (its summary and its MLflow run)."""
    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def atomic_write_text(path: Path, text: str) -> None:
    """Writes a file so that readers see either the old content or the new, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes a file so that readers see either the old content or the new, never half; a write that
    fails leaves no temporary file, and one that fails for a user's reason is a WriteError."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
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
