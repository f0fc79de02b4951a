"""Models for a task's error paths and serving shapes: a tiny ERNIE with random weights, built by the
pipeline itself (`model.weights=random`) with the demo tokenizer. Only shapes, refusals and the
agreement of one answer with another matter where these are used, not accuracy."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import DEMO_MODEL_DIR

DEMO_TOKENIZER = DEMO_MODEL_DIR / "tokenizer"


def random_model(task: str) -> list[str]:
    """The overrides of a 1-layer, 32-wide ERNIE with random weights for `task` (its own head size)."""
    vocab = len((DEMO_TOKENIZER / "vocab.txt").read_text(encoding="utf-8").splitlines())
    return [
        f"task={task}",
        "model.weights=random",
        "model.architecture.layers=1",
        "model.architecture.hidden=32",
        "model.architecture.heads=2",
        "model.architecture.ffn=64",
        f"model.architecture.vocab={vocab}",
        f"model.name_or_path={DEMO_TOKENIZER}",
    ]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def one_error_line(stderr: str) -> str:
    """The one `error:` line of a run that failed as a user's mistake should: no traceback."""
    errors = error_lines(stderr)
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    return errors[0]


def part_rows(folder: Path) -> list[dict]:
    parts = sorted(folder.glob("part-*.jsonl"))
    return [json.loads(line) for part in parts for line in part.read_text(encoding="utf-8").splitlines()]
