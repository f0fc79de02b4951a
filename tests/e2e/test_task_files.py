"""Each task's files as users get them wrong, through run.py: a malformed line in every task format, a
label.txt that cannot be the task's, a data.txt or predict.input line that lost a field. Each case is
one line naming the file and line, exit 2, before any model work and with nothing written; each
task's good folder, the one the broken cases start from, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunCli
from tests.e2e.task_models import one_error_line, random_model

GOOD = {
    "multi_class": {"label.txt": "a\nb\n", "dev.txt": "好\ta\n差\tb\n", "data.txt": "还行\n"},
    "multi_label": {"label.txt": "a\nb\nc\n", "dev.txt": "好\ta,b\n差\tc\n", "data.txt": "还行\n"},
    "hierarchical": {
        "label.txt": "正面\n负面\n负面##价格\n正面##物流\n",
        "dev.txt": "好\t正面,正面##物流\n贵\t负面,负面##价格\n",
        "data.txt": "还行\n",
    },
    "pair": {"label.txt": "0\n1\n", "dev.txt": "好\t好\t1\n好\t差\t0\n", "data.txt": "好\t还行\n"},
}

# (task, file, its broken content, the error after "error: {folder}/")
CASES = [
    (
        "multi_class",
        "dev.txt",
        "好\ta\n差\ta,b\n",
        "dev.txt:2: label 'a,b' is not in {folder}/label.txt (a, b)",
    ),
    ("multi_class", "dev.txt", "好\t好\ta\n", "dev.txt:1: expected 'text<TAB>label', found 2 tabs"),
    ("multi_class", "label.txt", "\n\n", "label.txt: no labels; expected one label per line"),
    (
        "multi_label",
        "dev.txt",
        "好\ta\n差\ta,,b\n",
        "dev.txt:2: an empty label in 'a,,b' (labels are separated by single commas)",
    ),
    (
        "multi_label",
        "dev.txt",
        "好\ta,\n",
        "dev.txt:1: an empty label in 'a,' (labels are separated by single commas)",
    ),
    (
        "multi_label",
        "dev.txt",
        "好\ta\n差\t \n",
        "dev.txt:2: expected 'text<TAB>label,label,...', the label field is empty",
    ),
    ("multi_label", "dev.txt", "好 a\n", "dev.txt:1: expected 'text<TAB>label,label,...', found no tab"),
    ("multi_label", "dev.txt", "好\ta,x\n", "dev.txt:1: label 'x' is not in {folder}/label.txt (a, b, c)"),
    ("multi_label", "label.txt", "a\nb\na\n", "label.txt:3: label 'a' repeats the one on line 1"),
    (
        "multi_label",
        "label.txt",
        "a,b\nc\n",
        "label.txt:1: label 'a,b' holds a comma, which separates the labels of a task=multi_label line; "
        "rename it",
    ),
    (
        "hierarchical",
        "label.txt",
        "正面\n负面##价格\n",
        "label.txt:2: label '负面##价格' has no parent '负面' in this file "
        "(every node is listed as its path)",
    ),
    (
        "hierarchical",
        "label.txt",
        "正面\n正面##\n",
        "label.txt:2: label '正面##' has an empty node (a node is its path, names joined by ##: 负面##价格)",
    ),
    (
        "hierarchical",
        "label.txt",
        "正面\n##价格\n",
        "label.txt:2: label '##价格' has an empty node (a node is its path, names joined by ##: 负面##价格)",
    ),
    (
        "hierarchical",
        "dev.txt",
        "好\t正面\n贵\t负面##价格\n",
        "dev.txt:2: label '负面##价格' is listed without its parent '负面' (a line lists one path per level)",
    ),
    (
        "pair",
        "dev.txt",
        "好\t好\t1\n好\t1\n",
        "dev.txt:2: expected 'text_a<TAB>text_b<TAB>label', found 1 tab",
    ),
    ("pair", "dev.txt", "好\t好\t1\t0\n", "dev.txt:1: expected 'text_a<TAB>text_b<TAB>label', found 3 tabs"),
    (
        "pair",
        "dev.txt",
        "好\t\t1\n",
        "dev.txt:1: expected 'text_a<TAB>text_b<TAB>label', the text_b field is empty",
    ),
    (
        "pair",
        "dev.txt",
        "\t好\t1\n",
        "dev.txt:1: expected 'text_a<TAB>text_b<TAB>label', the text_a field is empty",
    ),
    ("pair", "dev.txt", "好\t好\t0,1\n", "dev.txt:1: label '0,1' is not in {folder}/label.txt (0, 1)"),
    ("pair", "data.txt", "好\t还行\n还行\n", "data.txt:2: expected 'text_a<TAB>text_b', found no tab"),
    (
        "pair",
        "data.txt",
        "好\t还行\n还行\t\n",
        "data.txt:2: expected 'text_a<TAB>text_b', the text_b field is empty",
    ),
]


def dataset(folder: Path, task: str, broken: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in {**GOOD[task], **(broken or {})}.items():
        (folder / name).write_text(content, encoding="utf-8")
    return folder


@pytest.mark.parametrize(("task", "name", "content", "expected"), CASES)
def test_a_broken_task_file_is_one_line_before_any_model_work(
    task: str, name: str, content: str, expected: str, run_cli: RunCli, tmp_path: Path
) -> None:
    data = dataset(tmp_path / "data", task, {name: content})
    args = [*random_model(task), f"dataset.dir={data}", "mlflow.enabled=false"]
    cache = {"ERNIE_ONNX_CACHE": str(tmp_path / "fresh-cache")}
    failed = run_cli(*args, "hydra.run.dir=j1", env=cache)
    assert failed.returncode == 2
    assert one_error_line(failed.stderr) == f"error: {data}/{expected.format(folder=data)}"
    assert not (tmp_path / "fresh-cache" / "onnx").exists(), (
        "the model was converted before the data was read"
    )
    assert json.loads((tmp_path / "j1" / "job_status.json").read_text())["status"] == "FAILED"
    assert not (tmp_path / "j1" / "metrics.json").exists()


@pytest.mark.parametrize("task", sorted(GOOD))
def test_each_task_runs_its_good_folder(task: str, run_cli: RunCli, tmp_path: Path) -> None:
    """The folders the broken cases start from, as they are: the mended state each error points to."""
    data = dataset(tmp_path / "data", task)
    result = run_cli(*random_model(task), f"dataset.dir={data}", "mlflow.enabled=false", "hydra.run.dir=job")
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "job" / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and set(rows[0]) >= set(("text_a", "text_b") if task == "pair" else ("text",))


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("只有a\t", "expected 'text_a<TAB>text_b', the text_b field is empty"),
        ("\t只有b", "expected 'text_a<TAB>text_b', the text_a field is empty"),
        ("a\tb\tc", "expected 'text_a<TAB>text_b', found 2 tabs"),
        ("只有一段", "expected 'text_a<TAB>text_b', found no tab"),
    ],
)
def test_a_predict_input_pair_missing_a_text_is_named(
    line: str, expected: str, run_cli: RunCli, tmp_path: Path
) -> None:
    corpus = tmp_path / "pairs.txt"
    corpus.write_text(f"好\t好\n{line}\n", encoding="utf-8")
    labels = tmp_path / "labels.txt"
    labels.write_text("0\n1\n")
    args = [*random_model("pair"), "mode=predict", f"predict.input={corpus}", f"predict.labels={labels}"]
    args += [f"predict.output={tmp_path / 'out'}", "mlflow.enabled=false"]
    failed = run_cli(*args, "hydra.run.dir=j1")
    assert failed.returncode == 2
    assert one_error_line(failed.stderr) == (
        f"error: {corpus}:2: {expected} (predict.on_error=skip skips such lines)"
    )
    assert not list((tmp_path / "out").glob("*part-*"))
    skipped = run_cli(*args, "predict.on_error=skip", "hydra.run.dir=j2")
    assert skipped.returncode == 0, skipped.stderr[-3000:]
    assert json.loads((tmp_path / "out" / "_SUCCESS").read_text())["skipped_lines"] == 1
