"""The task options: each reads its PaddleNLP format (errors name file and line), decides label sets,
scores them as sklearn does, and reads and writes what a user sends and gets back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, hamming_loss

from pipeline.core.data import Inputs
from pipeline.core.errors import ConfigError, DatasetError, InputError
from pipeline.options.config import compose_config
from pipeline.options.tasks import TASKS


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def hierarchy(tmp_path: Path) -> Path:
    write(tmp_path, "label.txt", "正面\n负面\n正面##物流\n负面##物流\n负面##价格\n")
    return tmp_path


def test_every_task_is_an_option_with_its_headline_metric() -> None:
    assert TASKS.names() == ["hierarchical", "multi_class", "multi_label", "pair"]
    headlines = {name: TASKS.create(name).headline_metric for name in TASKS.names()}
    assert headlines == {
        "hierarchical": "micro_f1",
        "multi_class": "accuracy",
        "multi_label": "micro_f1",
        "pair": "accuracy",
    }


def test_selection_and_objectives_follow_the_task() -> None:
    default = compose_config()
    assert default.select.constraint_metric == "accuracy_delta_vs_fp32"
    assert default.objectives == ["accuracy"]
    multi_label = compose_config("task=multi_label")
    assert multi_label.select.constraint_metric == "micro_f1_delta_vs_fp32"
    assert multi_label.objectives == ["micro_f1"]


def test_model_demo_follows_the_task() -> None:
    for name in TASKS.names():
        config = compose_config(f"task={name}")
        assert config.model.path_prefix == str(TASKS.get(name).demo_model_dir() / "export" / "float32")


def test_a_pair_model_needs_token_types() -> None:
    with pytest.raises(ConfigError, match="task=pair needs a model with a token_type_ids input"):
        compose_config("task=pair", "model.weights=random", "model.inputs=[input_ids]")
    assert TASKS.create("pair").check_graph_inputs(["input_ids", "token_type_ids"], "m") is None


def test_bad_task_settings_are_named() -> None:
    with pytest.raises(ConfigError, match=r"task.threshold=1.5 must be within \(0, 1\)"):
        compose_config("task=multi_label", "task.threshold=1.5")
    with pytest.raises(ConfigError, match=r"task\.headline_metric='micro_f1' is not a metric of task=pair"):
        compose_config("task=pair", "task.headline_metric=micro_f1")


def test_multi_label_lines(tmp_path: Path) -> None:
    write(tmp_path, "label.txt", "a\nb\nc\n")
    write(tmp_path, "dev.txt", "t1\ta,c\n\nt2\tb\nt3\tc, a ,c\n")
    split = TASKS.create("multi_label").read_split(tmp_path, "dev", ["a", "b", "c"])
    assert split.texts == ["t1", "t2", "t3"]
    assert split.gold.tolist() == [[True, False, True], [False, True, False], [True, False, True]]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("t\t", "expected 'text<TAB>label,label,...', the label field is empty"),
        ("t", "expected 'text<TAB>label,label,...', found no tab"),
        ("t\ta,,b", "an empty label in 'a,,b'"),
        ("t\ta,d", "label 'd' is not in"),
        ("t\ta\tb", "found 2 tabs"),
        ("\ta", "the text field is empty"),
    ],
)
def test_multi_label_bad_lines_name_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = write(tmp_path, "dev.txt", f"ok\ta\n{line}\n")
    with pytest.raises(DatasetError) as error:
        TASKS.create("multi_label").read_split(tmp_path, "dev", ["a", "b", "c"])
    assert str(error.value).startswith(f"{path}:2: ") and why in str(error.value)


def test_hierarchical_labels_must_be_whole_paths(hierarchy: Path) -> None:
    task = TASKS.create("hierarchical")
    labels = task.read_labels(hierarchy)
    write(hierarchy, "dev.txt", "好快\t正面,正面##物流\n贵\t负面,负面##价格,负面##物流\n")
    assert task.read_split(hierarchy, "dev", labels).gold.sum() == 5
    path = write(hierarchy, "test.txt", "好快\t正面,正面##物流\n贵\t负面##价格\n")
    with pytest.raises(DatasetError) as error:
        task.read_split(hierarchy, "test", labels)
    assert str(error.value) == (
        f"{path}:2: label '负面##价格' is listed without its parent '负面' (a line lists one path per level)"
    )
    label_file = write(hierarchy, "label.txt", "正面\n正面##物流\n负面##价格\n")
    with pytest.raises(DatasetError) as error:
        task.read_labels(hierarchy)
    assert str(error.value).startswith(f"{label_file}:3: label '负面##价格' has no parent '负面'")


def test_pair_lines(tmp_path: Path) -> None:
    task = TASKS.create("pair")
    path = write(tmp_path, "dev.txt", "a1\tb1\tyes\na2\tb2\tno\n")
    split = task.read_split(tmp_path, "dev", ["no", "yes"])
    assert split.inputs.texts == ["a1", "a2"] and split.inputs.text_pairs == ["b1", "b2"]
    assert split.label_ids == [1, 0]
    write(tmp_path, "dev.txt", "a1\tb1\tyes\na2 b2\tno\n")
    with pytest.raises(DatasetError, match=f"{path}:2: expected 'text_a<TAB>text_b<TAB>label', found 1 tab"):
        task.read_split(tmp_path, "dev", ["no", "yes"])
    data = write(tmp_path, "data.txt", "a\tb\nc\td\te\n")
    with pytest.raises(DatasetError, match=f"{data}:2: expected 'text_a<TAB>text_b', found 2 tabs"):
        task.read_inputs(tmp_path)
    write(tmp_path, "data.txt", "a\tb\nc\td\n")
    assert task.read_inputs(tmp_path).text_pairs == ["b", "d"]


def _random_label_sets(rng: np.random.Generator, n: int, labels: int) -> tuple[np.ndarray, np.ndarray]:
    gold = rng.random((n, labels)) < 0.3
    predicted = gold ^ (rng.random((n, labels)) < 0.2)
    return predicted, gold


def test_multi_label_scores_are_sklearns() -> None:
    predicted, gold = _random_label_sets(np.random.default_rng(0), 300, 6)
    predicted[:, 5] = gold[:, 5] = False  # a label nobody has: F1 0, as sklearn counts it
    got = TASKS.create("multi_label").scores(predicted, gold, list("abcdef"))
    assert got["micro_f1"] == pytest.approx(f1_score(gold, predicted, average="micro"))
    assert got["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    assert got["subset_accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    assert got["hamming_loss"] == pytest.approx(hamming_loss(gold, predicted))


def test_hierarchical_scores_each_level() -> None:
    labels = ["正面", "负面", "正面##物流", "负面##物流", "负面##价格"]
    predicted, gold = _random_label_sets(np.random.default_rng(1), 200, len(labels))
    got = TASKS.create("hierarchical").scores(predicted, gold, labels)
    assert got["level1_micro_f1"] == pytest.approx(f1_score(gold[:, :2], predicted[:, :2], average="micro"))
    assert got["level2_macro_f1"] == pytest.approx(f1_score(gold[:, 2:], predicted[:, 2:], average="macro"))
    assert got["micro_f1"] == pytest.approx(f1_score(gold, predicted, average="micro"))


def test_multi_class_scores_and_agreement() -> None:
    task = TASKS.create("multi_class")
    probabilities = task.probabilities(np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0]]))
    predicted = task.decide(probabilities)
    gold = np.eye(3, dtype=bool)[[0, 1, 1]]
    assert task.scores(predicted, gold, list("abc")) == {
        "accuracy": pytest.approx(2 / 3),
        "macro_f1": pytest.approx(f1_score([0, 1, 1], [0, 1, 2], average="macro", zero_division=0)),
    }
    compared = task.compare_with_fp32(predicted, gold, gold, list("abc"))
    assert compared == {
        "agreement_vs_fp32": pytest.approx(2 / 3),
        "accuracy_delta_vs_fp32": pytest.approx(-1 / 3),
    }


def test_multi_label_head_thresholds_each_sigmoid() -> None:
    task = TASKS.create("multi_label", threshold=0.7)
    logits = np.array([[2.0, 0.0, -50.0, 800.0]])
    probabilities = task.probabilities(logits)
    assert np.all(np.isfinite(probabilities))
    assert task.decide(probabilities).tolist() == [[True, False, False, True]]
    rows = task.output_rows(Inputs(["t"]), probabilities, list("abcd"))
    assert rows == [
        {"text": "t", "labels": ["a", "d"], "scores": {"a": 0.880797, "b": 0.5, "c": 0.0, "d": 1.0}}
    ]


def test_pair_outputs_name_both_texts() -> None:
    task = TASKS.create("pair")
    rows = task.output_rows(
        Inputs(["a"], ["b"]), task.probabilities(np.array([[0.0, 1.0]])), ["不同", "相同"], [{"line": 3}]
    )
    assert rows == [{"line": 3, "text_a": "a", "text_b": "b", "label": "相同", "confidence": 0.731059}]


def test_served_inputs_are_checked_by_position() -> None:
    pair = TASKS.create("pair")
    assert pair.served_inputs([["a", "b"]]).text_pairs == ["b"]
    with pytest.raises(InputError) as error:
        pair.served_inputs([["a", "b"], "lone", [], ["a"], ["a", 1], None])
    assert str(error.value) == (
        "inputs[1] is a string, inputs[2] is an empty array, inputs[3] is an array of 1 item, "
        "inputs[4][1] is a number, inputs[5] is null: "
        "expected a pair of texts ([text_a, text_b], two JSON strings) for every input"
    )
    # Either text of a pair may be empty, as a single text may: the JSON says it is a pair.
    assert pair.served_inputs([["a", ""], ("", "b")]).text_pairs == ["", "b"]
    with pytest.raises(InputError, match=r"inputs\[0\] is an array: expected text"):
        TASKS.create("multi_label").served_inputs([["a", "b"]])
    with pytest.raises(InputError, match=r"inputs\[9\] is a number and 3 more"):
        TASKS.create("multi_class").served_inputs(list(range(13)))


def test_max_seq_length_leaves_room_for_the_special_tokens() -> None:
    assert compose_config("task=pair", "max_seq_length=3").max_seq_length == 3
    with pytest.raises(ConfigError, match=r"max_seq_length=2 must be within 3\.\.512 .* task=pair takes 3"):
        compose_config("task=pair", "max_seq_length=2")
    assert compose_config("max_seq_length=2").max_seq_length == 2


def test_the_search_optimises_the_tasks_headline() -> None:
    assert compose_config("experiment=optuna_search").objectives == ["accuracy", "latency_ms"]
    assert compose_config("experiment=optuna_search", "task=hierarchical").objectives == [
        "micro_f1",
        "latency_ms",
    ]
