"""Dataset files: the demo build and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.core.data import read_labels, read_split, read_texts
from pipeline.core.demo_data import DEV_SIZE, LABELS, TEST_SIZE, demo_dataset
from pipeline.core.errors import DatasetError


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
