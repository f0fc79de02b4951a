"""mode=predict: streamed, resumable, in order, bounded in memory; the same output on Ray Data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import PROJECT_ROOT
from tests.conftest import RunCli


@pytest.fixture(scope="session")
def reviews(demo_data_dir: Path) -> list[str]:
    return [line.split("\t")[0] for line in (demo_data_dir / "train.txt").read_text().splitlines()]


def write_corpus(path: Path, reviews: list[str], lines: int, blank_every: int = 0) -> Path:
    rows = []
    for i in range(lines):
        rows.append("" if blank_every and i % blank_every == blank_every - 1 else reviews[i % len(reviews)])
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def predict_args(user_overrides: list[str], corpus: Path, output: Path, *extra: str) -> list[str]:
    return [
        *user_overrides,
        "mode=predict",
        f"predict.input={corpus}",
        f"predict.output={output}",
        "predict.chunk_lines=400",
        *extra,
    ]


def output_rows(folder: Path) -> list[dict]:
    parts = sorted(folder.glob("part-*.jsonl"))
    return [json.loads(line) for part in parts for line in part.read_text(encoding="utf-8").splitlines()]


def test_rows_keep_input_order_and_line_numbers(
    run_cli: RunCli, user_overrides: list[str], reviews: list[str], tmp_path: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt", reviews, 1000, blank_every=7)
    result = run_cli(*predict_args(user_overrides, corpus, tmp_path / "out"), "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.glob("part-*")) == [f"part-0000{i}.jsonl" for i in range(3)]
    rows = output_rows(out)
    lines = corpus.read_text(encoding="utf-8").split("\n")
    assert [r["line"] for r in rows] == [n for n, text in enumerate(lines, start=1) if text.strip()]
    assert all(r["text"] == lines[r["line"] - 1] for r in rows)
    assert all(r["label"] in ("negative", "positive") and 0.5 <= r["confidence"] <= 1 for r in rows)
    success = json.loads((out / "_SUCCESS").read_text())
    assert success["rows"] == len(rows) == 1000 - 1000 // 7
    metrics = json.loads((tmp_path / "job" / "metrics.json").read_text())
    assert metrics["rows"] == len(rows) and metrics["lines_per_s"] > 0 and metrics["peak_rss_mb"] > 0


def test_killed_run_resumes_to_the_same_output(
    user_overrides: list[str], reviews: list[str], tmp_path: Path, cache_dir: Path
) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt", reviews, 6000, blank_every=50)
    command = [sys.executable, str(PROJECT_ROOT / "run.py")]
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}

    def run(output: str, *extra: str) -> subprocess.Popen:
        args = predict_args(user_overrides, corpus, tmp_path / output, "device.num_threads=1", *extra)
        return subprocess.Popen(
            [*command, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    assert run("whole", "hydra.run.dir=whole-job").wait(timeout=600) == 0
    interrupted = run("resumed", "hydra.run.dir=killed-job")
    parts = tmp_path / "resumed"
    deadline = time.monotonic() + 300
    while len(list(parts.glob("part-*.jsonl"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGKILL)
    interrupted.wait(timeout=60)
    finished_before = len(list(parts.glob("part-*.jsonl")))
    assert 3 <= finished_before < 15 and not (parts / "_SUCCESS").exists()
    # Hidden files there: the writer's lock (the kernel released it with the process) and nothing else.
    hidden = [p.name for p in parts.iterdir() if p.name.startswith(".")]
    assert set(hidden) <= {".writer.lock", ".writer"}, f"a half-written part was left: {hidden}"

    resumed = run("resumed", "hydra.run.dir=resumed-job")
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-3000:]
    metrics = json.loads((tmp_path / "resumed-job" / "metrics.json").read_text())
    assert metrics["parts_resumed"] == finished_before
    for part in sorted((tmp_path / "whole").glob("part-*.jsonl")):
        assert (parts / part.name).read_bytes() == part.read_bytes(), part.name
    assert json.loads((parts / "_SUCCESS").read_text())["rows"] == 6000 - 6000 // 50


def test_another_input_is_refused_unless_overwrite(
    run_cli: RunCli, user_overrides: list[str], reviews: list[str], tmp_path: Path
) -> None:
    first = write_corpus(tmp_path / "a.txt", reviews, 50)
    other = write_corpus(tmp_path / "b.txt", reviews[100:], 50)
    out = tmp_path / "out"
    assert run_cli(*predict_args(user_overrides, first, out), "hydra.run.dir=j1").returncode == 0
    refused = run_cli(*predict_args(user_overrides, other, out), "hydra.run.dir=j2")
    assert refused.returncode == 2
    assert (
        f"error: {out} holds predictions of another input or model (input, input_bytes, input_sha256 differ)"
        in refused.stderr
    )
    assert output_rows(out)[0]["text"] == reviews[0]  # nothing of the first run was touched
    replaced = run_cli(
        *predict_args(user_overrides, other, out, "predict.overwrite=true"), "hydra.run.dir=j3"
    )
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert output_rows(out)[0]["text"] == reviews[100]


def test_undecodable_line_is_named_or_skipped(
    run_cli: RunCli, user_overrides: list[str], reviews: list[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "bad.txt"
    # A byte-order mark first (Windows tools write one), then five reviews and a line of Latin-1.
    corpus.write_bytes(b"\xef\xbb\xbf" + ("\n".join(reviews[:5]) + "\n").encode() + b"caf\xe9\n")
    out = tmp_path / "out"
    failed = run_cli(*predict_args(user_overrides, corpus, out), "hydra.run.dir=j1")
    assert failed.returncode == 2
    assert f"error: {corpus}:6: not valid UTF-8 text" in failed.stderr
    assert not out.exists() or not list(out.glob("part-*")), "a part was written before the error"
    skipped = run_cli(*predict_args(user_overrides, corpus, out, "predict.on_error=skip"), "hydra.run.dir=j2")
    assert skipped.returncode == 0, skipped.stderr[-2000:]
    rows = output_rows(out)
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5] and rows[0]["text"] == reviews[0]
    assert json.loads((out / "_SUCCESS").read_text())["skipped_lines"] == 1


def test_empty_input_gives_empty_output_with_success(
    run_cli: RunCli, user_overrides: list[str], tmp_path: Path
) -> None:
    corpus = tmp_path / "empty.txt"
    corpus.write_text("")
    result = run_cli(*predict_args(user_overrides, corpus, tmp_path / "out"), "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "out" / "_SUCCESS").read_text())["rows"] == 0
    assert output_rows(tmp_path / "out") == []


@pytest.mark.slow
def test_memory_does_not_grow_with_the_input(
    run_cli: RunCli, user_overrides: list[str], reviews: list[str], tmp_path: Path
) -> None:
    peaks = {}
    for lines in (20_000, 200_000):
        corpus = write_corpus(tmp_path / f"{lines}.txt", reviews, lines)
        args = predict_args(user_overrides, corpus, tmp_path / f"out{lines}", "predict.chunk_lines=2000")
        result = run_cli(*args, "mlflow.enabled=false", f"hydra.run.dir=job{lines}", timeout=900)
        assert result.returncode == 0, result.stderr[-2000:]
        peaks[lines] = json.loads((tmp_path / f"job{lines}" / "metrics.json").read_text())["peak_rss_mb"]
    # Ten times the input, the same chunks in memory: within 15% (the README's bound).
    assert peaks[200_000] <= 1.15 * peaks[20_000], peaks


@pytest.mark.slow
def test_ray_data_writes_the_same_output_as_local(
    run_cli: RunCli, user_overrides: list[str], reviews: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    corpus = write_corpus(tmp_path / "corpus.txt", reviews, 2000, blank_every=9)
    for engine in ("local", "ray"):
        args = predict_args(user_overrides, corpus, tmp_path / engine, f"predict.executor={engine}")
        result = run_cli(*args, "mlflow.enabled=false", f"hydra.run.dir=job-{engine}")
        assert result.returncode == 0, result.stderr[-3000:]
    local = sorted(p.name for p in (tmp_path / "local").glob("part-*"))
    assert local == sorted(p.name for p in (tmp_path / "ray").glob("part-*")) and len(local) == 5
    for name in local:
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert (tmp_path / "ray" / "_SUCCESS").is_file()
