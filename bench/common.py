"""Shared pieces of the benchmark scripts: machine description, timing, markdown."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from pipeline.core.cpu import notable_flags
from pipeline.core.environment import environment_tags
from pipeline.core.files import atomic_write_text
from pipeline.core.tokenizer import Encoded
from pipeline.options.config import Config, compose_config
from pipeline.stages.infer import InferenceResult, run_inference
from pipeline.stages.prepare import open_engine


def cache_dir() -> Path:
    """The jobs' own cache (`cache_dir`, ERNIE_ONNX_CACHE where set)."""
    return Path(compose_config().cache_dir)


def parse_arguments(description: str, default_out: Path) -> argparse.Namespace:
    """The settings every benchmark shares: the seed's batch 32 / 128 tokens on 2 threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--medium-samples", type=int, default=512)
    parser.add_argument("--out", type=Path, default=default_out)
    return parser.parse_args()


def machine_lines() -> list[str]:
    tags = environment_tags()
    return [
        f"- Machine: {tags['cpu']}, {tags['cpu_count']} logical CPUs, "
        f"{platform.system()} {platform.machine()}; CPU flags: {notable_flags()}",
        f"- Software: Python {tags['python']}, onnxruntime {tags['onnxruntime']}, paddle {tags['paddle']}, "
        f"paddle2onnx {tags['paddle2onnx']}",
        f"- Project commit: `{tags['git_commit'][:12]}`",
    ]


def demo_subset(**counts: int) -> Path:
    """The first lines of demo dataset splits (e.g. dev=512, train=2000) in the seed's format, cached."""
    from pipeline.core.demo_data import demo_dataset

    source = demo_dataset(cache_dir())
    folder = cache_dir() / "bench-data" / "-".join(f"{split}{count}" for split, count in counts.items())
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "label.txt").write_text((source / "label.txt").read_text(encoding="utf-8"), encoding="utf-8")
    for split, count in counts.items():
        lines = (source / f"{split}.txt").read_text(encoding="utf-8").splitlines()[:count]
        (folder / f"{split}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def bench_config(args: argparse.Namespace, *overrides: str) -> Config:
    """What `python run.py <overrides>` would run, with the benchmark's batch, length and threads.

    Options come from conf/ exactly as for a job; the cache is the jobs' own (ERNIE_ONNX_CACHE).
    """
    return compose_config(
        f"batch_size={args.batch_size}",
        f"max_seq_length={args.max_seq_length}",
        f"device.num_threads={args.threads}",
        "mlflow.enabled=false",
        *overrides,
    )


def best_of(config: Config, model_path: Path, encoded: Encoded, repeats: int = 3) -> InferenceResult:
    """Runs the whole set `repeats` times and keeps the fastest pass (least disturbed by noise)."""
    engine = open_engine(config, model_path)
    results = [
        run_inference(engine, encoded, config.batch_size, warmup_batches=config.infer.warmup_batches)
        for _ in range(repeats)
    ]
    return min(results, key=lambda r: r.model_seconds)


def class_accuracy(logits: np.ndarray, gold: list[int]) -> float:
    """Multi-class accuracy: the share of samples whose highest logit is the gold class."""
    return float(np.mean(logits.argmax(-1) == np.asarray(gold))) if gold else 0.0


def ms_per_sample(result: InferenceResult) -> float:
    return 1000.0 * result.model_seconds / len(result.logits)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def replace_section(path: Path, name: str, lines: list[str]) -> None:
    """Rewrites one script's section of a markdown file shared by several scripts."""
    begin, end = f"<!-- begin {name} (generated) -->", f"<!-- end {name} -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else "# Benchmarks\n"
    block = "\n".join([begin, *lines, end])
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    atomic_write_text(path, text)
