"""Dataset files: the demo build and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.core.data import read_labels, read_split, read_texts
from pipeline.core.demo_data import (
    ASPECTS,
    DATA_SIZE,
    DEV_SIZE,
    LABELS,
    SENTIMENTS,
    TEST_SIZE,
    aspects_of,
    demo_dataset,
)
from pipeline.core.errors import DatasetError
from pipeline.options.tasks import TASKS


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_dataset_has_the_seed_format(demo_data_dir: Path) -> None:
    labels = read_labels(demo_data_dir)
    assert labels == list(LABELS)
    splits = {name: read_split(demo_data_dir, name, labels) for name in ("train", "dev", "test")}
    assert len(splits["dev"].texts) == DEV_SIZE and len(splits["test"].texts) == TEST_SIZE
    assert len(splits["train"].texts) > 10_000
    all_texts = [t for s in splits.values() for t in s.texts]
    assert len(all_texts) == len(set(all_texts)), "duplicates must be removed across splits"
    assert not any("\t" in t or "\n" in t for t in all_texts)
    # Both labels are well represented in the evaluation split.
    assert 0.3 < sum(splits["dev"].label_ids) / DEV_SIZE < 0.7
    data = read_texts(demo_data_dir)
    assert set(data.texts) <= set(splits["test"].texts) and len(data) == 100 and data.text_pairs is None


def test_demo_dataset_is_built_once_and_deterministic(demo_data_dir: Path, tmp_path: Path) -> None:
    assert demo_dataset(demo_data_dir.parent.parent.parent) == demo_data_dir  # cache hit
    rebuilt = demo_dataset(tmp_path)
    for name in ("train.txt", "dev.txt", "test.txt", "label.txt", "data.txt"):
        assert (rebuilt / name).read_bytes() == (demo_data_dir / name).read_bytes()


def test_line_without_tab_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "label.txt", "neg\npos\n")
    path = write(tmp_path, "dev.txt", "好\tpos\n\n坏 neg\n")
    with pytest.raises(DatasetError) as error:
        read_split(tmp_path, "dev", ["neg", "pos"])
    assert str(error.value) == f"{path}:3: expected 'text<TAB>label', found no tab"


def test_extra_tab_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "dev.txt", "好\tpos\tx\n")
    with pytest.raises(DatasetError, match=f"{path}:1: expected 'text<TAB>label', found 2 tabs"):
        read_split(tmp_path, "dev", ["neg", "pos"])


def test_unknown_label_names_label_file(tmp_path: Path) -> None:
    path = write(tmp_path, "test.txt", "好\tpos\n坏\tbad\n")
    with pytest.raises(DatasetError) as error:
        read_split(tmp_path, "test", ["neg", "pos"])
    assert str(error.value).startswith(f"{path}:2: label 'bad' is not in {tmp_path / 'label.txt'}")


def test_missing_file_says_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"label\.txt: file not found; expected one label per line"):
        read_labels(tmp_path)
    with pytest.raises(DatasetError, match=r"dev\.txt: file not found; expected lines of 'text<TAB>label'"):
        read_split(tmp_path, "dev", ["a"])
    with pytest.raises(DatasetError, match=r"data\.txt: file not found; expected one text per line"):
        read_texts(tmp_path)


def test_empty_and_undecodable_files(tmp_path: Path) -> None:
    write(tmp_path, "data.txt", "\n\n")
    with pytest.raises(DatasetError, match="no texts"):
        read_texts(tmp_path)
    (tmp_path / "dev.txt").write_bytes("好\tpos\n".encode() + b"\xff\xfe\tpos\n")
    with pytest.raises(DatasetError, match=r"dev\.txt:2: not valid UTF-8"):
        read_split(tmp_path, "dev", ["pos"])


def test_repeated_label_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path, "label.txt", "a\nb\na\n")
    with pytest.raises(DatasetError, match=f"{path}:3: label 'a' repeats the one on line 1"):
        read_labels(tmp_path)


def test_blank_lines_and_crlf_are_tolerated(tmp_path: Path) -> None:
    write(tmp_path, "dev.txt", "好\tpos\r\n\r\n坏\tneg\r\n")
    split = read_split(tmp_path, "dev", ["neg", "pos"])
    assert split.texts == ["好", "坏"] and split.label_ids == [1, 0]


# -- each task's demo dataset: the same reviews and split, labelled by stated rules --------------

TASK_DEMOS = {"multi_label": "aspects", "hierarchical": "aspect_tree", "pair": "same_sentiment"}


@pytest.mark.parametrize("task_name", sorted(TASK_DEMOS))
def test_task_demo_dataset_reads_back_with_its_task(
    task_name: str, cache_dir: Path, demo_data_dir: Path
) -> None:
    task = TASKS.create(task_name)
    assert task.demo_dataset_kind == TASK_DEMOS[task_name]
    folder = task.demo_dataset(cache_dir)
    labels = task.read_labels(folder)
    splits = {name: task.read_split(folder, name, labels) for name in ("train", "dev", "test")}
    sentiment = {name: read_split(demo_data_dir, name, list(LABELS)) for name in ("train", "dev", "test")}
    for name, split in splits.items():
        assert split.texts == sentiment[name].texts, "every demo shares the reviews and the split"
    data = task.read_inputs(folder)
    assert len(data) == DATA_SIZE and data.texts == splits["test"].texts[:DATA_SIZE]
    assert (data.text_pairs is not None) == (task_name == "pair")
    assert (folder / "README.md").read_text(encoding="utf-8").startswith("# The demo dataset")
    rebuilt = task.demo_dataset(cache_dir / "again")
    for name in ("label.txt", "train.txt", "dev.txt", "test.txt", "data.txt", "README.md"):
        assert (rebuilt / name).read_bytes() == (folder / name).read_bytes(), f"{name} is deterministic"


def test_aspects_are_the_sentiment_plus_keyword_rules(cache_dir: Path, demo_data_dir: Path) -> None:
    task = TASKS.create("multi_label")
    folder = task.demo_dataset(cache_dir)
    labels = task.read_labels(folder)
    assert labels == [*SENTIMENTS.values(), *ASPECTS]
    dev = task.read_split(folder, "dev", labels)
    sentiment = read_split(demo_data_dir, "dev", list(LABELS))
    expected = [
        {SENTIMENTS[LABELS[c]], *aspects_of(text)}
        for text, c in zip(sentiment.texts, sentiment.label_ids, strict=True)
    ]
    assert [{labels[i] for i in np.flatnonzero(row)} for row in dev.gold] == expected
    counts = dict(zip(labels, dev.gold.sum(axis=0).tolist(), strict=True))
    assert counts["负面"] + counts["正面"] == DEV_SIZE, "exactly one sentiment per review"
    assert all(200 <= counts[aspect] <= 500 for aspect in ASPECTS), counts
    assert aspects_of("服务态度好，价格便宜，房间干净") == ["服务", "价格", "房间"]
    assert aspects_of("还行") == []


def test_aspect_tree_puts_each_aspect_under_its_sentiment(cache_dir: Path) -> None:
    flat, tree = TASKS.create("multi_label"), TASKS.create("hierarchical")
    flat_dir, tree_dir = flat.demo_dataset(cache_dir), tree.demo_dataset(cache_dir)
    nodes = tree.read_labels(tree_dir)
    assert len(nodes) == 2 + 2 * len(ASPECTS) and nodes[1] == "负面##服务"
    flat_labels = flat.read_labels(flat_dir)
    flat_dev = flat.read_split(flat_dir, "dev", flat_labels)
    tree_dev = tree.read_split(tree_dir, "dev", nodes)  # checks every node's parent is on its line
    for flat_row, tree_row in zip(flat_dev.gold, tree_dev.gold, strict=True):
        names = [flat_labels[i] for i in np.flatnonzero(flat_row)]
        root = next(name for name in names if name in SENTIMENTS.values())
        assert {nodes[i] for i in np.flatnonzero(tree_row)} == {
            root,
            *(f"{root}##{name}" for name in names if name != root),
        }
    counts = dict(zip(nodes, tree_dev.gold.sum(axis=0).tolist(), strict=True))
    assert all(counts[node] >= 50 for node in nodes), counts


def test_same_sentiment_pairs_are_balanced_and_follow_the_corpus(
    cache_dir: Path, demo_data_dir: Path
) -> None:
    task = TASKS.create("pair")
    folder = task.demo_dataset(cache_dir)
    labels = task.read_labels(folder)
    assert labels == ["不同", "相同"]
    sentiment_of: dict[str, int] = {}
    for name in ("train", "dev", "test"):
        reviews = read_split(demo_data_dir, name, list(LABELS))
        sentiment_of |= dict(zip(reviews.texts, reviews.label_ids, strict=True))
    for name in ("train", "dev", "test"):
        split = task.read_split(folder, name, labels)
        pairs = split.inputs.text_pairs
        assert pairs is not None and set(pairs) <= set(split.texts), "text_b comes from the same split"
        assert all(a != b for a, b in zip(split.texts, pairs, strict=True))
        same = [sentiment_of[a] == sentiment_of[b] for a, b in zip(split.texts, pairs, strict=True)]
        assert [labels[c] == "相同" for c in split.label_ids] == same
        assert sum(same) == len(same) // 2, "half the pairs agree"
