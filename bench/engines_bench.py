"""Which runtime and precision on this CPU: ONNX Runtime, OpenVINO and Paddle Inference x FP32, BF16,
INT8 (dynamic) and INT8 (static), as real Hydra multiruns, with the seed's approach beside them.

    .venv/bin/python -m bench.engines_bench        # writes its section of docs/BENCHMARKS.md

Speed: `run.py -m engine=... precision=...` on the ERNIE 3.0 Medium shape (random weights) and the
first `--samples` demo dev reviews, batch 32, max_seq_length 128, 2 threads; combinations an engine
does not run are SKIPPED by the sweep. Quality: the same sweep on the demo model and the whole dev
split (accuracy, agreement with the same engine's FP32).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench.common import cache_dir, demo_subset, machine_lines, replace_section, table
from bench.seed_vs_pipeline import seed_run
from pipeline.core.data import read_labels, read_split
from pipeline.options.config import PROJECT_ROOT, compose_config
from pipeline.stages.convert import convert
from pipeline.stages.export import static_graph
from pipeline.stages.prepare import model_tokenizer

ENGINES = "onnxruntime,openvino,paddle_inference"
PRECISIONS = "fp32,bf16,int8,int8_static"


def sweep(work: Path, name: str, *overrides: str) -> list[dict]:
    """Runs `run.py -m` and returns its jobs: summary row + metrics.json."""
    folder = work / name
    subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "run.py"),
            "-m",
            f"engine={ENGINES}",
            f"precision={PRECISIONS}",
            "batch_size=32",
            "max_seq_length=128",
            "device.num_threads=2",
            "infer.predict_data=false",
            f"mlflow.tracking_uri=sqlite:///{work}/mlflow.db",
            f"mlflow.experiment_name=engines-{name}",
            f"hydra.sweep.dir={folder}",
            *overrides,
        ],
        cwd=work,
        env={**os.environ, "ERNIE_ONNX_CACHE": str(cache_dir())},
        check=True,
    )
    jobs = []
    for row in csv.DictReader((folder / "summary.csv").open()):
        config = yaml.safe_load((folder / row["job"] / ".hydra" / "config.yaml").read_text())
        metrics_file = folder / row["job"] / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        jobs.append(
            {**row, **metrics, "engine": config["engine"]["name"], "precision": config["precision"]["name"]}
        )
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=512)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "docs" / "BENCHMARKS.md")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-engines-"))

    data = demo_subset(dev=args.samples, train=2000)
    medium = sweep(work, "medium", "model=ernie-3.0-medium-zh", "model.weights=random", f"dataset.dir={data}")
    demo = {(j["engine"], j["precision"]): j for j in sweep(work, "demo")}

    # The seed's approach on the same Medium graph, texts, batch and threads.
    config = compose_config("model=ernie-3.0-medium-zh", "model.weights=random")
    tokenizer, _ = model_tokenizer(config.model, "fast")
    cache = Path(config.cache_dir)
    converted = convert(static_graph(config.model, 2, tokenizer.pad_id, cache), config.convert, cache)
    texts = read_split(data, "dev", read_labels(data)).texts
    seed_args = argparse.Namespace(threads=2, max_seq_length=128, batch_size=32)
    seed = {}
    for int8 in (False, True):
        _, seconds, _ = seed_run(converted, int8, texts, seed_args)
        seed["INT8 (quantize_dynamic defaults)" if int8 else "FP32"] = 1000 * seconds / len(texts)

    base = next(j for j in medium if (j["engine"], j["precision"]) == ("onnxruntime", "fp32"))["latency_ms"]
    rows = [
        [f"seed's approach ({label})", "onnxruntime", "-", f"{ms:.1f}", f"{base / ms:.2f}x", "", "", ""]
        for label, ms in seed.items()
    ]
    best_lossless, best_int8 = 0.0, 0.0
    for job in medium:
        key = (job["engine"], job["precision"])
        quality = demo.get(key, {})
        if job["status"] != "FINISHED":
            rows.append(
                [
                    job["precision"],
                    job["engine"],
                    job["status"],
                    "",
                    "",
                    "",
                    "",
                    job["error"].split(" [host")[0][:90],
                ]
            )
            continue
        speedup = base / job["latency_ms"]
        agreement = quality.get("agreement_vs_fp32")
        if agreement is not None and agreement >= 0.995:
            best_lossless = max(best_lossless, speedup)
        if job["precision"].startswith("int8"):
            best_int8 = max(best_int8, speedup)
        rows.append(
            [
                job["precision"],
                job["engine"],
                "FINISHED",
                f"{job['latency_ms']:.1f}",
                f"**{speedup:.2f}x**",
                f"{100 * quality['accuracy']:.2f}" if quality else "",
                f"{100 * agreement:.2f}" if agreement is not None else "",
                f"{100 * quality['accuracy_delta_vs_fp32']:+.2f}" if quality else "",
            ]
        )
    lines = [
        "## Engines and precisions on this CPU",
        "",
        "Generated by `python -m bench.engines_bench`: the Hydra multirun "
        f"`run.py -m engine={ENGINES} precision={PRECISIONS}` on the ERNIE 3.0 Medium shape (random "
        f"weights, the first {args.samples} demo dev reviews, batch 32, max_seq_length 128, 2 threads) for "
        "speed, and the same sweep on the demo model (2,000 dev reviews) for accuracy and agreement with "
        "the same engine's FP32. Speed-up = ONNX Runtime FP32 (fused) ms/sample / this row's. The seed's "
        "rows: its plain session on the same graph, texts, batch and threads.",
        "",
        *machine_lines(),
        "",
        *table(
            [
                "precision",
                "engine",
                "status",
                "Medium ms/sample",
                "vs ORT FP32",
                "demo accuracy %",
                "demo agreement vs FP32 %",
                "demo accuracy delta (points)",
            ],
            rows,
        ),
        "",
        f"- Best near-lossless path (demo agreement >= 99.5%): **{best_lossless:.2f}x** ORT FP32; best INT8 "
        f"path: **{best_int8:.2f}x**.",
        "- The per-job overhead of a cached run: `python -m bench.cached_run` (its own section).",
    ]
    replace_section(args.out, "engines", lines)
    print(f"wrote the engines section of {args.out}")


if __name__ == "__main__":
    main()
