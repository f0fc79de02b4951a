"""Per-job and per-sweep reports: per-class tables, confusion matrices, sweep summaries, plots."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml

from pipeline.cache import atomic_write_text
from pipeline.job_files import JOB_STATUS_FILE, METRICS_FILE
from pipeline.tracking.mlflow_runs import run_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SUMMARY_COLUMNS = (
    "job",
    "overrides",
    "status",
    "accuracy",
    "macro_f1",
    "latency_ms",
    "batch_latency_p95_ms",
    "throughput_sps",
    "e2e_ms",
    "model_size_mb",
    "agreement_vs_fp32",
    "accuracy_delta_vs_fp32",
    "error",
)


def confusion_matrix(predicted: np.ndarray, gold: np.ndarray, n_labels: int) -> np.ndarray:
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (gold, predicted), 1)
    return matrix


def per_class_markdown(matrix: np.ndarray, labels: list[str]) -> str:
    """Precision, recall, F1 and support per label, from a gold x predicted confusion matrix."""
    lines = ["| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        precision = tp / matrix[:, i].sum() if matrix[:, i].sum() else 0.0
        recall = tp / matrix[i, :].sum() if matrix[i, :].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        lines.append(f"| {label} | {precision:.4f} | {recall:.4f} | {f1:.4f} | {matrix[i, :].sum()} |")
    return "\n".join(lines) + "\n"


def new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    """A figure and its axes, drawn by Agg without pyplot, whose import alone costs a run ~0.5 s."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    return figure, figure.subplots()


def save_figure(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(path)


def plot_confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path) -> None:
    figure, axes = new_figure(1.2 + 0.6 * len(labels), 1.0 + 0.6 * len(labels))
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    for (row, col), count in np.ndenumerate(matrix):
        axes.text(col, row, str(count), ha="center", va="center", color="black")
    save_figure(figure, path)


def _job_row(job_dir: Path) -> dict[str, object]:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    row: dict[str, object] = {"job": job_dir.name, "overrides": run_name(list(overrides or []))}
    status_file = job_dir / JOB_STATUS_FILE
    status = json.loads(status_file.read_text()) if status_file.is_file() else {"status": "UNKNOWN"}
    row["status"] = status.get("status", "UNKNOWN")
    row["error"] = status.get("error", "")
    metrics_file = job_dir / METRICS_FILE
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        # Every scalar metric: the summary shows SUMMARY_COLUMNS, a selection rule may use any.
        row.update({k: v for k, v in metrics.items() if isinstance(v, int | float) and k not in row})
    config_file = job_dir / ".hydra" / "config.yaml"
    if config_file.is_file():
        config = yaml.safe_load(config_file.read_text())
        row["_batch_size"] = config.get("batch_size")
        row["_precision"] = (config.get("precision") or {}).get("name")
        row["_device"] = (config.get("device") or {}).get("name")
        row["_max_seq_length"] = config.get("max_seq_length")
    return row


def sweep_rows(sweep_dir: Path) -> list[dict[str, object]]:
    jobs = [p.parent.parent for p in Path(sweep_dir).glob("*/.hydra/overrides.yaml")]
    return [_job_row(job) for job in sorted(jobs, key=lambda p: (len(p.name), p.name))]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value if value is not None else "")


def write_sweep_summary(sweep_dir: Path) -> list[Path]:
    """summary.csv, summary.md and plots in the sweep folder; returns the files written."""
    sweep_dir = Path(sweep_dir)
    rows = sweep_rows(sweep_dir)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())
    header = "| " + " | ".join(SUMMARY_COLUMNS) + " |"
    lines = [f"# Sweep {sweep_dir.name}", "", header, "|" + "---|" * len(SUMMARY_COLUMNS)]
    lines += [
        "| " + " | ".join(_cell(row.get(c)).replace("|", "/") for c in SUMMARY_COLUMNS) + " |" for row in rows
    ]
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in {r["status"] for r in rows}}
    lines += ["", "Jobs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    written = [sweep_dir / "summary.csv", sweep_dir / "summary.md"]
    done = [r for r in rows if r["status"] == "FINISHED" and "latency_ms" in r]
    if done:
        written += _plots(done, sweep_dir)
    return written


def _plots(rows: list[dict[str, object]], sweep_dir: Path) -> list[Path]:
    paths = []
    figure, axes = new_figure(6, 4)

    def series(row: dict[str, object]) -> tuple:
        return (row.get("_device"), row.get("_precision"), row.get("_max_seq_length"))

    for key in sorted({series(r) for r in rows}, key=str):
        points = sorted((r["_batch_size"], r["latency_ms"]) for r in rows if series(r) == key)
        label = f"{key[0]} {key[1]}, max_seq_length {key[2]}"
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("batch size")
    axes.set_ylabel("model latency, ms/sample")
    axes.set_title("Latency vs batch size")
    axes.legend()
    paths.append(sweep_dir / "latency_vs_batch_size.png")
    save_figure(figure, paths[-1])

    figure, axes = new_figure(6, 4)
    for row in rows:
        axes.scatter(row["latency_ms"], row["accuracy"])
        axes.annotate(str(row["overrides"]) or "default", (row["latency_ms"], row["accuracy"]), fontsize=7)
    axes.set_xlabel("model latency, ms/sample")
    axes.set_ylabel("accuracy")
    axes.set_title("Accuracy vs latency")
    paths.append(sweep_dir / "accuracy_vs_latency.png")
    save_figure(figure, paths[-1])
    return paths
