"""Shared pieces of the benchmark scripts: machine description, timing, markdown."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np

from pipeline.cache import atomic_write_text
from pipeline.config import PROJECT_ROOT
from pipeline.devices import CpuDevice
from pipeline.engines.onnxruntime import OnnxRuntimeSession
from pipeline.stages.infer import InferenceResult, run_inference
from pipeline.tokenizer import Encoded
from pipeline.tracking.mlflow_runs import environment_tags

CACHE_DIR = PROJECT_ROOT / ".cache"
DEMO_MODEL = PROJECT_ROOT / "assets" / "demo-model"


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
        f"{platform.system()} {platform.machine()}",
        f"- Software: Python {tags['python']}, onnxruntime {tags['onnxruntime']}, paddle {tags['paddle']}, "
        f"paddle2onnx {tags['paddle2onnx']}",
        f"- Project commit: `{tags['git_commit'][:12]}`",
    ]


def best_of(
    model_path: Path, encoded: Encoded, batch_size: int, threads: int, repeats: int = 3
) -> InferenceResult:
    """Runs the whole set `repeats` times and keeps the fastest pass (least disturbed by noise)."""
    engine = OnnxRuntimeSession(model_path, CpuDevice(num_threads=threads))
    results = [run_inference(engine, encoded, batch_size, warmup_batches=2) for _ in range(repeats)]
    return min(results, key=lambda r: r.model_seconds)


def ms_per_sample(result: InferenceResult) -> float:
    return 1000.0 * result.model_seconds / len(result.logits)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def accuracy(logits: np.ndarray, gold: list[int]) -> float:
    return float(np.mean(logits.argmax(-1) == np.asarray(gold)))


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
