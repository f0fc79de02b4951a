"""mode=predict: streamed, resumable, in order, bounded in memory; the same output on Ray Data."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import DEMO_MODEL_DIR, PROJECT_ROOT
from tests.conftest import RunCli
from tests.e2e.task_models import DEMO_TOKENIZER, one_error_line, random_model


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


# -- each task's input, the disk and the input file under pressure ----------------------------------


def pair_corpus(path: Path, reviews: list[str], lines: int, lost_tab: int | None = None) -> Path:
    """`lines` pairs of reviews; line `lost_tab` (1-based) lost its tab half way, as a careless edit does."""
    rows = []
    for i in range(lines):
        a, b = reviews[i % len(reviews)], reviews[(i * 7 + 3) % len(reviews)]
        rows.append(f"{a} {b}" if i + 1 == lost_tab else f"{a}\t{b}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def pair_args(corpus: Path, output: Path, *extra: str, model: list[str] | None = None) -> list[str]:
    """mode=predict of `corpus` by a pair model (a random one unless `model` names another)."""
    labels = corpus.parent / "pair-labels.txt"
    labels.write_text("different\nsame\n", encoding="utf-8")
    return [
        *(model or random_model("pair")),
        "mode=predict",
        f"predict.input={corpus}",
        f"predict.output={output}",
        f"predict.labels={labels}",
        "mlflow.enabled=false",
        *extra,
    ]


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_pair_that_lost_its_tab_half_way_is_named_or_skipped(
    executor: str, run_cli: RunCli, reviews: list[str], tmp_path: Path
) -> None:
    if executor == "ray":
        pytest.importorskip("ray")
    corpus = pair_corpus(tmp_path / "pairs.txt", reviews, 100_000, lost_tab=50_001)
    out = tmp_path / "out"
    args = pair_args(corpus, out, f"predict.executor={executor}")
    failed = run_cli(*args, "hydra.run.dir=j1")
    assert failed.returncode == 2
    assert one_error_line(failed.stderr) == (
        f"error: {corpus}:50001: expected 'text_a<TAB>text_b', found no tab "
        "(predict.on_error=skip skips such lines)"
    )
    assert not list(out.glob("*part-*")), "a part was written before the error"
    skipped = run_cli(*args, "predict.on_error=skip", "hydra.run.dir=j2", timeout=900)
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    success = json.loads((out / "_SUCCESS").read_text())
    assert (success["rows"], success["input_lines"], success["skipped_lines"]) == (99_999, 100_000, 1)
    around = [json.loads(line)["line"] for line in (out / "part-00005.jsonl").read_text().splitlines()[:2]]
    assert around == [50_002, 50_003]  # 50,001 skipped, the numbering stays the input's
    assert json.loads((out / "part-00004.jsonl").read_text().splitlines()[-1])["line"] == 50_000


def test_a_full_disk_stops_with_one_line_and_the_next_run_resumes(
    reviews: list[str], tmp_path: Path, cache_dir: Path
) -> None:
    """The output folder on a small tmpfs in a mount namespace of its own (root only): the run that
    fills it ends with one line and exit 2, keeps its finished parts and no temporary file; once
    there is space, the same command predicts the rest, identical to a run that had room."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare for a tmpfs of its own")
    full = tmp_path / "full"
    full.mkdir()
    probe = subprocess.run(["unshare", "-m", "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)])
    if probe.returncode != 0:
        pytest.skip("mount namespaces are not allowed here")
    corpus = pair_corpus(tmp_path / "pairs.txt", reviews, 2000)
    env = {**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)}
    command = [sys.executable, str(PROJECT_ROOT / "run.py")]
    reference = subprocess.run(
        [*command, *pair_args(corpus, tmp_path / "ref", "predict.chunk_lines=500"), "hydra.run.dir=ref-job"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert reference.returncode == 0, reference.stderr[-3000:]
    parts = sorted((tmp_path / "ref").glob("part-*.jsonl"))
    assert len(parts) == 4
    # Room for three parts (tmpfs counts whole pages) and the small files, not for the fourth.
    room = sum(-(-p.stat().st_size // 4096) * 4096 for p in parts[:3]) + 4 * 4096
    args = shlex.join(pair_args(corpus, full / "out", "predict.chunk_lines=500"))
    python = shlex.join(command)
    script = f"""
        mount -t tmpfs -o size={room} tmpfs {full}
        {python} {args} hydra.run.dir=job1 > first.out 2> first.err; echo $? > first.rc
        ls -A {full}/out > first.ls
        mount -o remount,size=16m {full}
        {python} {args} hydra.run.dir=job2 > second.out 2> second.err; echo $? > second.rc
        cp -r {full}/out copied
    """
    subprocess.run(["unshare", "-m", "sh", "-c", script], cwd=tmp_path, env=env, check=True, timeout=900)
    first_err = (tmp_path / "first.err").read_text()
    assert (tmp_path / "first.rc").read_text().strip() == "2", first_err[-3000:]
    assert one_error_line(first_err) == (
        f"error: cannot write {full}/out/part-00003.jsonl: no space left on the device; free some space "
        "there, then run the same command again: it keeps the 3 parts written and predicts the rest"
    )
    left = (tmp_path / "first.ls").read_text().split()
    assert sorted(left) == [".writer.lock", "_manifest.json", *(p.name for p in parts[:3])], left
    status = json.loads((tmp_path / "job1" / "job_status.json").read_text())
    assert status["status"] == "FAILED" and "no space left" in status["error"]

    assert (tmp_path / "second.rc").read_text().strip() == "0", (tmp_path / "second.err").read_text()[-3000:]
    assert json.loads((tmp_path / "job2" / "metrics.json").read_text())["parts_resumed"] == 3
    for part in parts:
        assert (tmp_path / "copied" / part.name).read_bytes() == part.read_bytes(), part.name
    assert json.loads((tmp_path / "copied" / "_SUCCESS").read_text())["rows"] == 2000


def test_an_input_replaced_while_it_is_predicted_stops_the_run(
    reviews: list[str], tmp_path: Path, cache_dir: Path, run_cli: RunCli
) -> None:
    """Parts are read by byte ranges after the scan: a replaced input stops the run before a part is
    predicted from it. Put back, the same command resumes; a new content needs predict.overwrite."""
    original = pair_corpus(tmp_path / "original.txt", reviews, 60_000)
    corpus = tmp_path / "pairs.txt"
    shutil.copy(original, corpus)
    out = tmp_path / "out"
    args = pair_args(corpus, out, "predict.chunk_lines=2000", "device.num_threads=1")
    running = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "run.py"), *args, "hydra.run.dir=j1"],
        cwd=tmp_path,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not (out / "part-00002.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    replacement = pair_corpus(tmp_path / "replacement.txt", reviews[500:], 60_000)
    replacement.replace(corpus)  # as an editor or a download saves it: a new file under the name
    _, stderr = running.communicate(timeout=600)
    assert running.returncode == 2, stderr[-3000:]
    assert one_error_line(stderr) == (
        f"error: {corpus}: the input changed while it was being predicted (its size or modification time "
        "differs); the parts written so far are of the earlier content and are kept: put that file back and "
        "run the same command again to resume, or set predict.overwrite=true to predict the new content "
        "from the start"
    )
    kept = sorted(p.name for p in out.glob("part-*.jsonl"))
    assert 3 <= len(kept) < 30 and not (out / "_SUCCESS").exists()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".part-")], "a temporary part was left"

    refused = run_cli(*args, "hydra.run.dir=j2")
    assert "holds predictions of another input or model (input_bytes, input_sha256 differ)" in one_error_line(
        refused.stderr
    )
    shutil.copy(original, corpus)  # put back: the same content, a new modification time
    resumed = run_cli(*args, "hydra.run.dir=j3")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "j3" / "metrics.json").read_text())["parts_resumed"] == len(kept)
    rows = output_rows(out)
    assert [r["line"] for r in rows] == list(range(1, 60_001)) and rows[0]["text_a"] == reviews[0]

    replacement = pair_corpus(tmp_path / "replacement.txt", reviews[500:], 60_000)
    replacement.replace(corpus)
    replaced = run_cli(*args, "predict.overwrite=true", "hydra.run.dir=j4")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert output_rows(out)[0]["text_a"] == reviews[500]


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_model_of_another_label_count_leaves_the_folder_to_the_next_run(
    executor: str, run_cli: RunCli, reviews: list[str], tmp_path: Path
) -> None:
    """The demo model has two classes; a label.txt of three is refused before any part is written,
    and the run with the right label.txt into the same folder works (a manifest alone blocks nothing)."""
    if executor == "ray":
        pytest.importorskip("ray")
    corpus = write_corpus(tmp_path / "corpus.txt", reviews, 300)
    three = tmp_path / "three.txt"
    three.write_text("negative\nneutral\npositive\n")
    two = tmp_path / "two.txt"
    two.write_text("negative\npositive\n")
    args = [
        f"model.path_prefix={DEMO_MODEL_DIR / 'export' / 'float32'}",
        f"model.name_or_path={DEMO_MODEL_DIR / 'tokenizer'}",
        "mode=predict",
        f"predict.input={corpus}",
        f"predict.output={tmp_path / 'out'}",
        "predict.chunk_lines=100",
        f"predict.executor={executor}",
        "mlflow.enabled=false",
    ]
    refused = run_cli(*args, f"predict.labels={three}", "hydra.run.dir=j1")
    assert refused.returncode == 2
    assert one_error_line(refused.stderr) == f"error: the model outputs 2 classes but {three} lists 3 labels"
    assert not list((tmp_path / "out").glob("*part-*"))
    fixed = run_cli(*args, f"predict.labels={two}", "hydra.run.dir=j2")
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert len(output_rows(tmp_path / "out")) == 300


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_pair_model_without_token_types_is_refused_in_one_line(
    executor: str, run_cli: RunCli, reviews: list[str], tmp_path: Path
) -> None:
    """An export with input_ids only (the multi-class demo's shape, exported so), asked for pairs."""
    if executor == "ray":
        pytest.importorskip("ray")
    corpus = pair_corpus(tmp_path / "pairs.txt", reviews, 100)
    labels = tmp_path / "two.txt"
    labels.write_text("different\nsame\n")
    single = run_cli(
        *random_model("multi_class"),
        "model.inputs=[input_ids]",
        "mode=predict",
        f"predict.input={write_corpus(tmp_path / 'texts.txt', reviews, 10)}",
        f"predict.labels={labels}",
        "mlflow.enabled=false",
        "hydra.run.dir=export-job",
        env={"ERNIE_ONNX_CACHE": str(tmp_path / "cache")},
    )
    assert single.returncode == 0, single.stderr[-3000:]
    (export,) = (tmp_path / "cache").glob("random-models/*/export")
    model = ["task=pair", f"model.path_prefix={export / 'float32'}", f"model.name_or_path={DEMO_TOKENIZER}"]
    result = run_cli(
        *pair_args(corpus, tmp_path / "out", f"predict.executor={executor}", model=model), "hydra.run.dir=j1"
    )
    assert result.returncode == 2
    assert one_error_line(result.stderr) == (
        "error: task=pair needs a model with a token_type_ids input (it tells text_a from text_b); "
        f"the model {export / 'float32'} takes only input_ids: export it with token_type_ids"
    )
    assert not list((tmp_path / "out").glob("*part-*"))


def test_pairs_at_the_limits_of_max_seq_length(run_cli: RunCli, tmp_path: Path) -> None:
    """Pairs that fit exactly, one token over, a megabyte over (either side, both), at max_seq_length 3,
    4, 5 and 16: each gets its row with its whole texts, and a cut pair answers as the pair it was cut
    to (here each Chinese character is one token). Below 3, one line before any work."""
    huge = "这个产品很好用物流也很快" * 87_000  # 1 MB of UTF-8, 12 characters a period
    lines = [
        ("好吃不贵", "味道不错"),  # 4 + 4 tokens: exactly 11 with the special tokens
        ("好吃不贵啊", "味道不错"),  # one over 11
        (huge, "短"),
        ("短", huge),
        (huge, huge),
        (huge[:12], "短"),  # what (huge, 短) keeps at max_seq_length 16: 12 + 1 + 3
        (huge[:7], huge[:6]),  # what (huge, huge) keeps at 16: b loses a token on ties
    ]
    corpus = tmp_path / "limits.txt"
    corpus.write_text("".join(f"{a}\t{b}\n" for a, b in lines), encoding="utf-8")
    for length in (3, 4, 5, 11, 16):
        out = tmp_path / f"out{length}"
        result = run_cli(*pair_args(corpus, out, f"max_seq_length={length}"), f"hydra.run.dir=j{length}")
        assert result.returncode == 0, result.stderr[-3000:]
        rows = output_rows(out)
        assert [(r["text_a"], r["text_b"]) for r in rows] == lines
        if length == 3:  # [CLS] [SEP] [SEP]: every pair is the same input
            assert len({r["confidence"] for r in rows}) == 1
        if length == 16:
            assert rows[2]["confidence"] == pytest.approx(rows[5]["confidence"], abs=2e-6)
            assert rows[4]["confidence"] == pytest.approx(rows[6]["confidence"], abs=2e-6)
    too_short = run_cli(*pair_args(corpus, tmp_path / "out2", "max_seq_length=2"), "hydra.run.dir=j2")
    assert too_short.returncode == 2
    assert one_error_line(too_short.stderr).startswith(
        "error: max_seq_length=2 must be within 3..512 (model demo has 512 positions; "
        "a sample of task=pair takes 3 special tokens)"
    )
