"""The predict stage: a corpus of any size -> DIR/part-NNNNN.jsonl, streamed, resumable, in input order.

The input is planned in chunks of `predict.chunk_lines` lines (one scan: line-aligned byte
ranges, UTF-8 checked line by line, a content hash); each chunk becomes one part file, written
atomically by a `PartPredictor` (tokenize, length-sorted batches, order restored). Memory is
bounded by one chunk, whatever the input's size. A rerun keeps the finished parts and does the
rest; `_SUCCESS` is written last. The same `PartPredictor` runs in this process
(`predict.executor=local`) or as one Ray Data actor per worker (`predict.executor=ray`).

Chunks are read by byte ranges after the scan, so each read first checks that the input is still
the file that was scanned (its size and modification time, `InputVersion`): an input replaced or
edited while it is predicted stops the run with one line, and no part is written from it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from pipeline.core.data import Inputs
from pipeline.core.errors import ConfigError, DatasetError
from pipeline.core.files import atomic_write_text
from pipeline.core.tokenizer import load_tokenizer
from pipeline.options.config import Config, InferConfig, PredictConfig
from pipeline.options.tasks import TaskConfig
from pipeline.stages.infer import check_label_count, infer
from pipeline.stages.prepare import open_engine

SUCCESS_FILE = "_SUCCESS"
PART_NAME = re.compile(r"part-(\d{5,})\.jsonl")
MANIFEST_FILE = "_manifest.json"
_READ_BLOCK = 1 << 20


def part_name(index: int) -> str:
    return f"part-{index:05d}.jsonl"


@dataclass(frozen=True)
class Chunk:
    """Lines [first_line, first_line + n_lines) of the input, at bytes [start, end)."""

    index: int
    start: int
    end: int
    first_line: int
    n_lines: int
    bad_lines: tuple[int, ...] = ()  # undecodable lines to skip (predict.on_error=skip)


@dataclass(frozen=True)
class InputVersion:
    """What a cheap look tells of the input's content: its size and modification time."""

    size: int
    mtime_ns: int

    @classmethod
    def of(cls, status: os.stat_result) -> InputVersion:
        return cls(status.st_size, status.st_mtime_ns)


def input_changed(path: Path, when: str, advice: str) -> DatasetError:
    return DatasetError(
        path, f"the input changed while it was being {when} (its size or modification time differs); {advice}"
    )


# What to do when the input changes while its chunks are predicted: the parts written so far are of
# the content that was scanned, which the manifest records.
CHANGED_WHILE_PREDICTED = (
    "the parts written so far are of the earlier content and are kept: put that file back and run the "
    "same command again to resume, or set predict.overwrite=true to predict the new content from the start"
)


@dataclass
class InputPlan:
    path: Path
    size: int
    sha256: str
    n_lines: int
    chunks: list[Chunk] = field(default_factory=list)
    mtime_ns: int = 0

    @property
    def version(self) -> InputVersion:
        return InputVersion(self.size, self.mtime_ns)

    @property
    def skipped_lines(self) -> int:
        return sum(len(c.bad_lines) for c in self.chunks)


def _lines(handle) -> Iterator[bytes]:
    """The file's lines (with their newline), read in blocks."""
    rest = b""
    while block := handle.read(_READ_BLOCK):
        lines = (rest + block).split(b"\n")
        rest = lines.pop()
        for line in lines:
            yield line + b"\n"
    if rest:
        yield rest


def plan_input(
    path: Path, chunk_lines: int, on_error: str, parse: Callable[[str], list[str] | str] | None = None
) -> InputPlan:
    """One pass over the input: chunk boundaries, lines that are not UTF-8 or that `parse` (the
    task's line format) refuses, by number, and a content hash."""
    if not path.is_file():
        raise DatasetError(path, "input file not found; expected one text per line")
    digest = hashlib.sha256()
    offset = start = 0
    first_line = 1
    bad: list[int] = []
    with path.open("rb") as handle:
        before = InputVersion.of(os.fstat(handle.fileno()))
        plan = InputPlan(path=path, size=before.size, sha256="", n_lines=0, mtime_ns=before.mtime_ns)
        for number, line in enumerate(_lines(handle), start=1):
            digest.update(line)
            problem = _line_problem(line, number, parse)
            if problem is not None:
                if on_error != "skip":
                    raise DatasetError(path, f"{problem} (predict.on_error=skip skips such lines)", number)
                bad.append(number)
            offset += len(line)
            plan.n_lines = number
            if number - first_line + 1 == chunk_lines:
                plan.chunks.append(
                    Chunk(len(plan.chunks), start, offset, first_line, chunk_lines, tuple(bad))
                )
                start, first_line, bad = offset, number + 1, []
        if offset != before.size or InputVersion.of(os.fstat(handle.fileno())) != before:
            raise input_changed(path, "read", "run again once nothing writes to it")
    if plan.n_lines >= first_line:
        n = plan.n_lines - first_line + 1
        plan.chunks.append(Chunk(len(plan.chunks), start, offset, first_line, n, tuple(bad)))
    plan.sha256 = digest.hexdigest()
    return plan


def _line_problem(line: bytes, number: int, parse: Callable[[str], list[str] | str] | None) -> str | None:
    try:
        text = _clean(line.decode("utf-8"), number)
    except UnicodeDecodeError:
        return "not valid UTF-8 text"
    if parse is None or not text.strip():
        return None
    parsed = parse(text)
    return parsed if isinstance(parsed, str) else None


def _clean(text: str, number: int) -> str:
    """The line without its end and byte-order mark; its fields are the task's to strip, so that
    `text_a<TAB>` reads as an empty text_b, not as a line without a tab."""
    if number == 1:  # a byte-order mark, as Windows tools write it
        text = text.removeprefix("\ufeff")
    return text.rstrip("\r\n")


def read_chunk(path: Path, chunk: Chunk, version: InputVersion | None = None) -> list[tuple[int, str]]:
    """(line number, text) of the chunk's non-blank, decodable lines. With `version` (the scanned
    input's), an input that is no longer that file is refused before and after the read."""
    with path.open("rb") as handle:
        if version is not None and InputVersion.of(os.fstat(handle.fileno())) != version:
            raise input_changed(path, "predicted", CHANGED_WHILE_PREDICTED)
        handle.seek(chunk.start)
        data = handle.read(chunk.end - chunk.start)
        if version is not None and InputVersion.of(os.fstat(handle.fileno())) != version:
            raise input_changed(path, "predicted", CHANGED_WHILE_PREDICTED)
    rows = []
    skip = set(chunk.bad_lines)
    lines = data.split(b"\n")[: chunk.n_lines]
    if len(data) != chunk.end - chunk.start or len(lines) != chunk.n_lines:
        raise input_changed(path, "predicted", CHANGED_WHILE_PREDICTED)
    for number, raw in enumerate(lines, start=chunk.first_line):
        if number in skip:
            continue
        try:
            text = _clean(raw.decode("utf-8"), number)
        except UnicodeDecodeError:  # plan_input checked every line: the input changed since
            raise input_changed(path, "predicted", CHANGED_WHILE_PREDICTED) from None
        if text.strip():
            rows.append((number, text))
    return rows


def prediction_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The task's output rows as JSON lines."""
    return [json.dumps(row, ensure_ascii=False) + "\n" for row in rows]


@dataclass(frozen=True)
class PredictorSpec:
    """Everything a PartPredictor needs, picklable so that a Ray actor can build one."""

    model_path: Path
    tokenizer: str
    config: Config
    labels: list[str]


class PartPredictor:
    """Tokenizer + engine for one process: turns a chunk into its part file."""

    def __init__(self, spec: PredictorSpec, label_file: Path) -> None:
        self.spec = spec
        self.label_file = label_file
        self.tokenizer = load_tokenizer(spec.tokenizer, spec.config.infer.tokenizer)
        self.engine = open_engine(spec.config, spec.model_path)
        self.warmed_up = False

    def predict_chunk(
        self, input_path: Path, chunk: Chunk, output_dir: Path, version: InputVersion | None = None
    ) -> dict[str, int]:
        config, task = self.spec.config, self.spec.config.task
        rows = read_chunk(input_path, chunk, version)
        lines = []
        if rows:
            options = config.infer if not self.warmed_up else _without_warmup(config)
            inputs = _inputs(task, rows, input_path)
            result = infer(
                inputs,
                self.tokenizer,
                self.engine,
                options,
                batch_size=config.batch_size,
                max_seq_length=config.max_seq_length,
                desc=f"part {chunk.index}",
                progress=False,
            )
            self.warmed_up = True
            check_label_count(result.logits.shape[-1], self.spec.labels, self.label_file)
            probabilities = task.probabilities(result.logits)
            lines = prediction_lines(
                task.output_rows(inputs, probabilities, self.spec.labels, [{"line": n} for n, _ in rows])
            )
        atomic_write_text(output_dir / part_name(chunk.index), "".join(lines))
        return {"part": chunk.index, "rows": len(lines)}


def _inputs(task: TaskConfig, rows: list[tuple[int, str]], path: Path) -> Inputs:
    """The rows' texts as the task reads them."""
    samples: list[list[str]] = []
    for _, text in rows:
        parsed = task.parse_input(text)
        if isinstance(parsed, str):  # plan_input checked every line: the input changed since
            raise input_changed(path, "predicted", CHANGED_WHILE_PREDICTED)
        samples.append(parsed)
    columns = list(zip(*samples, strict=True))
    return Inputs(list(columns[0]), list(columns[1]) if len(columns) == 2 else None)


def _without_warmup(config: Config) -> InferConfig:
    """Warm-up batches once per process, not once per chunk."""
    return replace(config.infer, warmup_batches=0)


def manifest(plan: InputPlan, spec: PredictorSpec, options: PredictConfig) -> dict:
    """What decides the output: the input's content, the model, the tokenization, the labels, the parts."""
    config = spec.config
    return {
        "input": str(plan.path),
        "input_sha256": plan.sha256,
        "input_bytes": plan.size,
        "input_lines": plan.n_lines,
        "chunk_lines": options.chunk_lines,
        "on_error": options.on_error,
        "model": str(spec.model_path),
        "tokenizer": spec.tokenizer,
        "max_seq_length": config.max_seq_length,
        "precision": asdict(config.precision),
        "engine": config.engine.name,
        "task": asdict(config.task),
        "labels": spec.labels,
    }


def prepare_output(output_dir: Path, expected: dict, overwrite: bool) -> set[int]:
    """The indices of parts already finished for exactly this input and model.

    A folder holding another input's or model's predictions is refused (or cleared, with
    predict.overwrite=true), so parts of two runs never mix. A manifest alone holds no predictions
    (a run that stopped before its first part was written): it is replaced. The caller is the
    folder's sole writer, so temporary files there are a killed writer's: they are removed.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in ("part-*.jsonl", MANIFEST_FILE, SUCCESS_FILE):
        for leftover in output_dir.glob(f".{name}.*"):
            leftover.unlink(missing_ok=True)
    manifest_path = output_dir / MANIFEST_FILE
    try:
        existing = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else None
    except (ValueError, UnicodeDecodeError):
        existing = {}  # damaged by hand: nothing in it matches
    has_output = bool(finished_parts(output_dir)) or (output_dir / SUCCESS_FILE).exists()
    if existing != expected and has_output:
        if not overwrite:
            changed = (
                sorted(k for k in expected if existing.get(k) != expected[k])
                if existing
                else ["no readable manifest"]
            )
            raise ConfigError(
                f"{output_dir} holds predictions of another input or model ({', '.join(changed)} differ); "
                "choose another predict.output or set predict.overwrite=true"
            )
        for stale in [*output_dir.glob("part-*.jsonl"), output_dir / SUCCESS_FILE, manifest_path]:
            stale.unlink(missing_ok=True)
    if existing != expected:
        (output_dir / SUCCESS_FILE).unlink(missing_ok=True)
        atomic_write_text(manifest_path, json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    return finished_parts(output_dir)


def finished_parts(output_dir: Path) -> set[int]:
    """The indices of the part files in `output_dir` (part-NNNNN.jsonl; other names are not ours)."""
    return {int(m.group(1)) for p in output_dir.glob("part-*.jsonl") if (m := PART_NAME.fullmatch(p.name))}


def finish(output_dir: Path, summary: dict) -> None:
    atomic_write_text(output_dir / SUCCESS_FILE, json.dumps(summary, indent=2) + "\n")


def count_rows(output_dir: Path) -> int:
    """Rows in all part files (each row is one line)."""
    total = 0
    for part in output_dir.glob("part-*.jsonl"):
        with part.open("rb") as handle:
            total += sum(block.count(b"\n") for block in iter(partial(handle.read, _READ_BLOCK), b""))
    return total
