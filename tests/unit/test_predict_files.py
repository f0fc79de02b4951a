"""What a prediction writes and reads when the disk or the input misbehaves: a write that fails for
a reason the user must fix is one line naming the file (the temporary file gone, the old content
kept); an input that changes after its scan is refused before any chunk of it is predicted."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from pipeline.core.data import LineFormat, parse_input
from pipeline.core.errors import DatasetError, WriteError
from pipeline.core.files import atomic_write_text, write_error
from pipeline.stages.predict import (
    MANIFEST_FILE,
    SUCCESS_FILE,
    plan_input,
    prepare_output,
    read_chunk,
)

PAIR = LineFormat(text_fields=("text_a", "text_b"))


def parse_pair(line: str) -> list[str] | str:
    return parse_input(line, PAIR)


@pytest.mark.parametrize(
    ("code", "why", "fix"),
    [
        (errno.ENOSPC, "no space left on the device", "free some space there"),
        (errno.EDQUOT, "the disk quota is exceeded", "free some space there"),
        (errno.EROFS, "the file system is read-only", "make it writable"),
        (errno.EACCES, "permission denied", "make it writable"),
    ],
)
def test_a_failed_write_is_one_line_and_leaves_the_old_file(
    code: int, why: str, fix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "part-00000.jsonl"
    target.write_text("old\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(WriteError) as error:
        atomic_write_text(target, "new\n")
    assert str(error.value) == (
        f"cannot write {target}: {why}; {fix}, then run the same command again (or write elsewhere)"
    )
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-00000.jsonl"]  # no temporary file left


def test_other_os_errors_stay_what_they_are(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        atomic_write_text(tmp_path / "a.txt", "x")
    # Outside our writers, only errors that writes alone meet are a user's: EACCES may be a read's.
    assert write_error(OSError(errno.EACCES, "Permission denied", "/m/model.onnx")) is None
    assert str(write_error(OSError(errno.ENOSPC, "No space left on device", "/c/model.onnx"))).startswith(
        "cannot write /c/model.onnx: no space left on the device"
    )


def test_an_input_written_to_while_it_is_scanned_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"a{i}\tb{i}\n" for i in range(10)))

    appended = []

    def parse_while_appending(line: str) -> list[str] | str:
        if not appended:  # another program still writing the file
            with path.open("a") as handle:
                handle.write("c\td\n")
            appended.append(line)
        return parse_pair(line)

    with pytest.raises(DatasetError, match="the input changed while it was being read") as error:
        plan_input(path, 4, "fail", parse_while_appending)
    assert str(error.value).startswith(f"{path}: ")


@pytest.mark.parametrize("how", ["replaced", "rewritten in place", "appended to", "touched"])
def test_an_input_changed_after_its_scan_is_refused_before_a_chunk_is_read(how: str, tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("".join(f"a{i}\tb{i}\n" for i in range(10)))
    plan = plan_input(path, 4, "fail", parse_pair)
    assert read_chunk(path, plan.chunks[1], plan.version) == [
        (n, f"a{n - 1}\tb{n - 1}") for n in (5, 6, 7, 8)
    ]
    other = tmp_path / "other.txt"
    other.write_text("".join(f"x{i}\ty{i}\n" for i in range(10)))
    if how == "replaced":
        other.replace(path)
    elif how == "rewritten in place":
        path.write_text(other.read_text())
    elif how == "appended to":
        with path.open("a") as handle:
            handle.write("more\tlines\n")
    else:
        os.utime(path, ns=(plan.mtime_ns + 1_000_000_000, plan.mtime_ns + 1_000_000_000))
    with pytest.raises(DatasetError) as error:
        read_chunk(path, plan.chunks[1], plan.version)
    assert str(error.value) == (
        f"{path}: the input changed while it was being predicted (its size or modification time differs); "
        "the parts written so far are of the earlier content and are kept: put that file back and run "
        "the same command again to resume, or set predict.overwrite=true to predict the new content "
        "from the start"
    )


def test_a_pair_line_keeps_its_tabs_until_the_task_reads_it(tmp_path: Path) -> None:
    """`text_a<TAB>` is an empty text_b, not a line without a tab: the line is stripped by field."""
    path = tmp_path / "pairs.txt"
    path.write_text("a\tb\nonly a\t\n\tonly b\n  \t  \n")
    with pytest.raises(DatasetError) as error:
        plan_input(path, 10, "fail", parse_pair)
    assert str(error.value) == (
        f"{path}:2: expected 'text_a<TAB>text_b', the text_b field is empty "
        "(predict.on_error=skip skips such lines)"
    )
    plan = plan_input(path, 10, "skip", parse_pair)
    assert plan.chunks[0].bad_lines == (2, 3)  # line 4 is blank: no sample, nothing to skip
    assert read_chunk(path, plan.chunks[0], plan.version) == [(1, "a\tb")]


def test_a_manifest_without_parts_is_replaced_and_leftovers_removed(tmp_path: Path) -> None:
    """A run that stopped before its first part (a model of another label count) blocks nobody."""
    out = tmp_path / "out"
    first = {"input_sha256": "abc", "labels": ["a", "b", "c"]}
    assert prepare_output(out, first, overwrite=False) == set()
    (out / ".part-00000.jsonl.k1ll3d").write_text("half a part")  # a killed writer's temporary file
    second = {"input_sha256": "abc", "labels": ["a", "b"]}
    assert prepare_output(out, second, overwrite=False) == set()
    assert json.loads((out / MANIFEST_FILE).read_text()) == second
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST_FILE]
    # With a part written, another model's run is refused, and strange names are not parts.
    (out / "part-00000.jsonl").write_text("{}\n")
    (out / "part-notes.jsonl").write_text("mine\n")
    assert prepare_output(out, second, overwrite=False) == {0}
    with pytest.raises(Exception, match=r"holds predictions of another input or model \(labels differ\)"):
        prepare_output(out, first, overwrite=False)
    (out / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(Exception, match=r"\(no readable manifest differ\)"):
        prepare_output(out, second, overwrite=False)
    assert prepare_output(out, second, overwrite=True) == set()
    assert not (out / SUCCESS_FILE).exists()
