"""The artifact cache: keys follow content, builds are atomic and happen once under concurrency."""

from __future__ import annotations

import hashlib
import multiprocessing
import time
from pathlib import Path

import pytest

from pipeline.core.cache import cached_artifact, content_key
from pipeline.core.files import atomic_write_bytes, atomic_write_text, file_digest


def _slow_build(out: Path, log: str) -> None:
    with open(log, "a") as handle:
        handle.write("built\n")
    time.sleep(0.5)
    (out / "artifact.txt").write_text("done")


def _build_in_process(cache: str, log: str, results: multiprocessing.Queue) -> None:
    folder, built = cached_artifact(Path(cache), "thing", "k1", lambda out: _slow_build(out, log))
    results.put((str(folder), built))


def test_key_follows_file_content_not_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert content_key(model=a, opset=13) == content_key(model=b, opset=13)
    assert content_key(model=a, opset=13) != content_key(model=a, opset=14)
    b.write_bytes(b"changed")
    assert content_key(model=a) != content_key(model=b)


def test_parallel_builders_build_once(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [
        context.Process(target=_build_in_process, args=(str(tmp_path), str(log), results)) for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    outcomes = [results.get(timeout=5) for _ in workers]
    assert log.read_text().count("built") == 1
    assert sorted(built for _, built in outcomes) == [False, False, True]
    assert len({folder for folder, _ in outcomes}) == 1
    assert (Path(outcomes[0][0]) / "artifact.txt").read_text() == "done"


def test_failed_build_leaves_nothing(tmp_path: Path) -> None:
    def broken(out: Path) -> None:
        (out / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        cached_artifact(tmp_path, "thing", "k2", broken)
    assert not (tmp_path / "thing" / "k2").exists()
    assert [p.name for p in (tmp_path / "thing").iterdir() if not p.name.endswith(".lock")] == []


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "metrics.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["metrics.json"]


def test_a_file_digest_follows_the_files_content(tmp_path: Path) -> None:
    """file_digest remembers what it read by the file's identity: a rewrite is read again."""
    path = tmp_path / "weights.bin"
    path.write_bytes(b"a" * 100)
    assert file_digest(path) == file_digest(path) == hashlib.sha256(b"a" * 100).hexdigest()
    time.sleep(0.05)  # past the file system's clock tick: the rewrite gets later times
    path.write_bytes(b"b" * 100)  # in place, the same size
    assert file_digest(path) == hashlib.sha256(b"b" * 100).hexdigest()
    atomic_write_bytes(path, b"c" * 100)  # a new file renamed over it
    assert file_digest(path) == hashlib.sha256(b"c" * 100).hexdigest()
