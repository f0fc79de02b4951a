"""Reads and validates a dataset in PaddleNLP's text-classification formats.

A dataset folder holds `label.txt` (one label per line), `train.txt`/`dev.txt`/`test.txt` (one
labelled sample per line) and `data.txt` (one sample to predict per line). How a line reads is a
`LineFormat`, which each task (pipeline/options/tasks/) names:

- one text and one label: `text<TAB>label` (multi-class, the seed's format);
- one text and its labels: `text<TAB>label,label` (multi-label, hierarchical);
- a pair of texts and one label: `text_a<TAB>text_b<TAB>label` (sentence pairs).

Every error names the file and the line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core.errors import DatasetError

SPLITS = ("train", "dev", "test")
LABEL_SEPARATOR = ","


@dataclass(frozen=True)
class LineFormat:
    """The fields of a line: its texts, then (in labelled files) one label or a list of them."""

    text_fields: tuple[str, ...] = ("text",)
    label_list: bool = False  # labels comma-separated: one or more per line

    def unlabelled(self) -> str:
        return "<TAB>".join(self.text_fields)

    def labelled(self) -> str:
        return f"{self.unlabelled()}<TAB>{'label,label,...' if self.label_list else 'label'}"


# The seed's format: `text<TAB>label`.
SINGLE_TEXT = LineFormat()


@dataclass(frozen=True)
class Inputs:
    """What a model reads: one text per sample, or a pair (`text_pairs` then holds the second texts)."""

    texts: list[str]
    text_pairs: list[str] | None = None

    def __post_init__(self) -> None:
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError("texts and text_pairs differ in length")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> Inputs:
        pairs = self.text_pairs
        return Inputs([self.texts[i] for i in indices], [pairs[i] for i in indices] if pairs else None)

    def fields(self, names: tuple[str, ...]) -> list[dict[str, str]]:
        """Each sample as {field name: text}, e.g. {"text_a": ..., "text_b": ...}."""
        columns = [self.texts] if self.text_pairs is None else [self.texts, self.text_pairs]
        return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


@dataclass(frozen=True)
class Split:
    """A labelled split: its inputs and, per sample, which of `labels` it has (bool, [n, labels])."""

    name: str
    inputs: Inputs
    gold: np.ndarray
    labels: list[str]

    def __post_init__(self) -> None:
        if self.gold.shape != (len(self.inputs), len(self.labels)):
            raise ValueError(f"gold is {self.gold.shape}, expected {(len(self.inputs), len(self.labels))}")

    @property
    def texts(self) -> list[str]:
        return self.inputs.texts

    @property
    def label_ids(self) -> list[int]:
        """Each sample's (first) label index: the class, for single-label tasks."""
        return [int(i) for i in self.gold.argmax(axis=1)]


def _require_file(path: Path, expected: str) -> None:
    if path.is_dir():
        raise DatasetError(path, f"is a folder; expected a file of {expected}")
    if not path.is_file():
        raise DatasetError(path, f"file not found; expected {expected}")


def read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based line numbers; blank lines carry no sample.

    A UTF-8 byte-order mark (Notepad, Excel's "CSV UTF-8") is dropped; CRLF endings are read as LF.
    """
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        line = _line_of_offset(path.read_bytes(), exc.start)
        raise DatasetError(path, "not valid UTF-8 text", line=line) from None
    return [
        (number, line.rstrip("\r")) for number, line in enumerate(raw.split("\n"), start=1) if line.strip()
    ]


def _line_of_offset(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def read_label_lines(dataset_dir: Path, name: str = "label.txt") -> dict[str, int]:
    """label.txt's labels, in order, with the line each is on."""
    path = Path(dataset_dir) / name
    _require_file(path, "one label per line")
    seen: dict[str, int] = {}
    for number, line in read_lines(path):
        label = line.strip()
        if label in seen:
            raise DatasetError(path, f"label {label!r} repeats the one on line {seen[label]}", line=number)
        seen[label] = number
    if not seen:
        raise DatasetError(path, "no labels; expected one label per line")
    return seen


def read_labels(dataset_dir: Path, name: str = "label.txt") -> list[str]:
    return list(read_label_lines(dataset_dir, name))


def parse_fields(line: str, names: tuple[str, ...], expected: str) -> list[str] | str:
    """The tab-separated fields `names` of a line, stripped, or why the line does not have them."""
    fields = line.split("\t")
    if len(fields) != len(names):
        tabs = len(fields) - 1
        found = "no tab" if tabs == 0 else "1 tab" if tabs == 1 else f"{tabs} tabs"
        return f"expected '{expected}', found {found}"
    fields = [field.strip() for field in fields]
    if empty := [name for name, field in zip(names, fields, strict=True) if not field]:
        return f"expected '{expected}', the {empty[0]} field is empty"
    return fields


def parse_input(line: str, line_format: LineFormat) -> list[str] | str:
    """An unlabelled line's texts (data.txt, predict.input), or why it is not one."""
    if len(line_format.text_fields) == 1:
        return [line.strip()]
    return parse_fields(line, line_format.text_fields, line_format.unlabelled())


# Checks the labels of one line (all known): an error to report, or None.
LineLabelCheck = Callable[[list[str]], "str | None"]


def read_split(
    dataset_dir: Path,
    name: str,
    labels: list[str],
    line_format: LineFormat = SINGLE_TEXT,
    check_labels: LineLabelCheck | None = None,
) -> Split:
    if name not in SPLITS:
        raise DatasetError(Path(dataset_dir) / f"{name}.txt", f"unknown split; use one of {SPLITS}")
    path = Path(dataset_dir) / f"{name}.txt"
    expected = line_format.labelled()
    _require_file(path, f"lines of '{expected}'")
    index = {label: i for i, label in enumerate(labels)}
    n_texts = len(line_format.text_fields)
    columns: list[list[str]] = [[] for _ in range(n_texts)]
    rows: list[list[int]] = []
    for number, line in read_lines(path):
        fields = parse_fields(line, (*line_format.text_fields, "label"), expected)
        if isinstance(fields, str):
            raise DatasetError(path, fields, line=number)
        names = _label_names(fields[-1], line_format.label_list)
        if isinstance(names, str):
            raise DatasetError(path, names, line=number)
        if unknown := [label for label in names if label not in index]:
            raise DatasetError(
                path,
                f"label {unknown[0]!r} is not in {Path(dataset_dir) / 'label.txt'} ({', '.join(labels)})",
                line=number,
            )
        if check_labels is not None and (problem := check_labels(names)):
            raise DatasetError(path, problem, line=number)
        for column, text in zip(columns, fields[:n_texts], strict=True):
            column.append(text)
        rows.append([index[label] for label in names])
    if not rows:
        raise DatasetError(path, f"no samples; expected lines of '{expected}'")
    gold = np.zeros((len(rows), len(labels)), dtype=bool)
    for row, label_ids in enumerate(rows):
        gold[row, label_ids] = True
    inputs = Inputs(columns[0], columns[1] if n_texts == 2 else None)
    return Split(name=name, inputs=inputs, gold=gold, labels=labels)


def _label_names(field: str, label_list: bool) -> list[str] | str:
    if not label_list:
        return [field]
    names = [name.strip() for name in field.split(LABEL_SEPARATOR)]
    if "" in names:
        return f"an empty label in {field!r} (labels are separated by single commas)"
    return list(dict.fromkeys(names))


def read_texts(dataset_dir: Path, name: str = "data", line_format: LineFormat = SINGLE_TEXT) -> Inputs:
    """Unlabelled samples to predict, one per line."""
    path = Path(dataset_dir) / f"{name}.txt"
    expected = line_format.unlabelled()
    _require_file(path, "one text per line" if expected == "text" else f"lines of '{expected}'")
    samples: list[list[str]] = []
    for number, line in read_lines(path):
        fields = parse_input(line, line_format)
        if isinstance(fields, str):
            raise DatasetError(path, fields, line=number)
        samples.append(fields)
    if not samples:
        raise DatasetError(path, "no texts; expected one text per line")
    columns = list(zip(*samples, strict=True))
    return Inputs(list(columns[0]), list(columns[1]) if len(columns) == 2 else None)


def dataset_dir(folder: str | None, build_demo: Callable[[], Path]) -> Path:
    """The dataset folder: `dataset.dir`, or the task's demo dataset (`build_demo`) for None."""
    if folder is None:
        return build_demo()
    path = Path(folder)
    expected = "expected a folder with label.txt, dev.txt/test.txt, data.txt"
    if path.is_file():
        raise DatasetError(path, f"dataset.dir is a file; {expected}")
    if not path.is_dir():
        raise DatasetError(path, f"dataset folder not found; {expected}")
    return path
