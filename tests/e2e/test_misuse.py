"""Misuse from the command line: every path is checked before any work, one writer per prediction
folder, and Hydra-level mistakes read like ours -- one line each, exit 2."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import PROJECT_ROOT
from tests.conftest import RunCli


def one_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "HYDRA_FULL_ERROR" not in result.stderr
    return errors[0]


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("not a folder\n")
    return path


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("predict.input={tmp}", "predict.input={tmp} is a folder; expected a text file of one text per line"),
        ("predict.input={tmp}/none.txt", "predict.input={tmp}/none.txt does not exist; expected a text file"),
        (
            "predict.output={file}/out",
            "predict.output={file}/out: cannot make a folder there (its parent {file} is a file)",
        ),
        ("predict.labels={tmp}", "predict.labels={tmp} is a folder; expected a label.txt"),
        ("dataset.dir={file}", "dataset.dir={file} is a file; expected a folder with label.txt"),
        ("model.name_or_path={file}", "model.name_or_path={file} is a file; expected a tokenizer folder"),
        (
            "cache_dir={file}/cache",
            "cache_dir={file}/cache: cannot make a folder there (its parent {file} is a file)",
        ),
        (
            "mlflow.tracking_uri=sqlite:///{file}/db/mlflow.db",
            "mlflow.tracking_uri={file}/db: cannot make a folder there",
        ),
    ],
)
def test_every_path_is_checked_before_any_work(
    override: str, expected: str, run_cli: RunCli, a_file: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("很好\n")
    values = {"tmp": str(tmp_path), "file": str(a_file)}
    store = f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"
    # The override comes last: where it sets the tracking URI too, it is the one that counts.
    result = run_cli(
        "mode=predict", f"predict.input={corpus}", store, "hydra.run.dir=job", override.format(**values)
    )
    assert expected.format(**values) in one_error_line(result)
    assert not (tmp_path / "job" / "job.json").exists()  # nothing ran


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: no folder is unwritable to it")
def test_an_unwritable_output_folder_is_named(run_cli: RunCli, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("很好\n")
    result = run_cli("mode=predict", f"predict.input={corpus}", f"predict.output={locked}/out")
    assert (
        f"predict.output={locked}/out: cannot write there (in {locked}): permission denied"
        in one_error_line(result)
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["no_such_key=1"], "error: unknown key 'no_such_key': not a key of this config"),
        (["batch_size=[1,2"], "error: cannot read the override 'batch_size=[1,2'"),
        (
            ["precision=fp32,int8"],
            "error: precision=fp32,int8 is a list of values: to sweep over them put -m first",
        ),
        (["precision=int9"], "error: precision=int9 is not one of bf16, fp16, fp32, int8, int8_static"),
        (
            ["batch_size=many"],
            "error: batch_size=many: Value 'many' of type 'str' could not be converted to Integer",
        ),
        (["-m", "no_such_key=1,2"], "error: unknown key 'no_such_key'"),
        (["hydra.run.dir=/proc/no/such/run"], "error: /proc/no"),
        (["device.inter_op_threads=2"], "error: device.inter_op_threads is now engine.inter_op_threads"),
    ],
)
def test_hydra_mistakes_read_like_ours(args: list[str], expected: str, run_cli: RunCli) -> None:
    assert one_error_line(run_cli(*args)).startswith(expected)


def test_a_bad_value_late_in_a_new_sweep_stops_it_before_any_job_runs(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # Each value is composed once, by the first job that brings it (not every job, as Hydra's sweeper).
    result = run_cli("-m", "precision=fp32,int8", "batch_size=8,many", "hydra.sweep.dir=sweep")
    assert one_error_line(result).startswith(
        "error: batch_size=many: Value 'many' of type 'str' could not be converted to Integer"
    )
    assert not any(p.name.isdigit() for p in (tmp_path / "sweep").iterdir())


def test_hydra_full_error_still_gives_the_whole_trace(run_cli: RunCli) -> None:
    result = run_cli("no_such_key=1", env={"HYDRA_FULL_ERROR": "1"})
    assert result.returncode != 0 and "Traceback" in result.stderr and "no_such_key" in result.stderr


@pytest.mark.slow
def test_one_writer_per_prediction_folder(
    run_cli: RunCli, user_overrides: list[str], demo_data_dir: Path, cache_dir: Path, tmp_path: Path
) -> None:
    reviews = [line.split("\t")[0] for line in (demo_data_dir / "train.txt").read_text().splitlines()]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(reviews[i % len(reviews)] for i in range(200_000)) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    args = [*user_overrides, "mode=predict", f"predict.input={corpus}", f"predict.output={out}"]
    args += ["predict.chunk_lines=2000", "mlflow.enabled=false"]
    first = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args, "hydra.run.dir=first"],
        cwd=tmp_path,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not any(out.glob("part-*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(out.glob("part-*.jsonl")), "the first prediction wrote nothing"
        started = time.monotonic()
        second = run_cli(*args, "hydra.run.dir=second")
        assert time.monotonic() - started < 60  # refused at once, not after doing the work
        line = one_error_line(second)
        assert f"predict.output={out} is being written by process {first.pid} on host" in line
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The killed writer's lock is the kernel's: gone with it. The next run resumes its parts.
    third = run_cli(*args, "hydra.run.dir=third")
    assert third.returncode == 0, third.stderr[-3000:]
    assert (out / "_SUCCESS").is_file() and "parts_resumed" in (
        tmp_path / "third" / "metrics.json"
    ).read_text()
