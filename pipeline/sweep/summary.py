"""A sweep's summary from its job folders: summary.csv, summary.md and two plots."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.core.files import atomic_write_text, load_yaml
from pipeline.core.job_folder import METRICS_FILE, job_name, job_overrides, job_status, read_json, swept_names
from pipeline.core.plots import Series, chart
from pipeline.options.tasks import TASKS

SPEED_COLUMNS = ("latency_ms", "batch_latency_p95_ms", "throughput_sps", "e2e_ms", "model_size_mb")
# A job folder written before tasks existed ran the seed's task.
_DEFAULT_TASK = {"name": "multi_class", "headline_metric": "accuracy"}


def number(row: dict[str, object], key: str) -> float | None:
    """A row's `key` as a number: a metric, a batch size; None where the job has none."""
    value = row.get(key)
    return float(value) if isinstance(value, int | float) else None


def summary_columns(rows: list[dict[str, object]]) -> list[str]:
    """The summary's columns: the quality metrics of the sweep's tasks (each task's headline
    first), speed, agreement with FP32 and the headline's change against FP32."""
    quality: list[str] = []
    deltas: list[str] = []
    for task, headline in dict.fromkeys((str(r["_task"]), str(r["_headline"])) for r in rows):
        names = [headline, *(n for n in TASKS.get(task).metric_names if n != headline)]
        quality += [n for n in names if n not in quality]
        deltas += [f"{headline}_delta_vs_fp32"] if f"{headline}_delta_vs_fp32" not in deltas else []
    return ["job", "overrides", "status", *quality, *SPEED_COLUMNS, "agreement_vs_fp32", *deltas, "error"]


def headline_metric(rows: list[dict[str, object]]) -> str:
    """The metric the sweep's jobs are ranked by: the headline of the first job's task."""
    return str(rows[0]["_headline"]) if rows else _DEFAULT_TASK["headline_metric"]


def _job_row(job_dir: Path) -> dict[str, object]:
    name = job_name(swept_names(job_overrides(job_dir), job_dir.parent))
    row: dict[str, object] = {"job": job_dir.name, "overrides": name}
    status = job_status(job_dir)
    row["status"] = status.get("status", "UNKNOWN")
    row["error"] = status.get("error", "")
    if metrics := read_json(job_dir / METRICS_FILE):
        # Every scalar metric: the summary shows summary_columns(), a selection rule may use any.
        row.update({k: v for k, v in metrics.items() if isinstance(v, int | float) and k not in row})
    config_file = job_dir / ".hydra" / "config.yaml"
    config = load_yaml(config_file.read_text()) if config_file.is_file() else None
    task = (config or {}).get("task") or _DEFAULT_TASK
    row["_task"], row["_headline"] = task["name"], task["headline_metric"]
    if config:
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
    columns = summary_columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(sweep_dir / "summary.csv", buffer.getvalue())
    header = "| " + " | ".join(columns) + " |"
    lines = [f"# Sweep {sweep_dir.name}", "", header, "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c)).replace("|", "/") for c in columns) + " |" for row in rows]
    counts = {status: sum(1 for r in rows if r["status"] == status) for status in {r["status"] for r in rows}}
    lines += ["", "Jobs: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    atomic_write_text(sweep_dir / "summary.md", "\n".join(lines) + "\n")
    written = [sweep_dir / "summary.csv", sweep_dir / "summary.md"]
    done = [r for r in rows if r["status"] == "FINISHED" and "latency_ms" in r]
    if done:
        written += _plots(done, sweep_dir, headline_metric(rows))
    return written


def _plots(rows: list[dict[str, object]], sweep_dir: Path, quality: str) -> list[Path]:
    def series(row: dict[str, object]) -> tuple:
        return (row.get("_device"), row.get("_precision"), row.get("_max_seq_length"))

    lines = []
    for key in sorted({series(r) for r in rows}, key=str):
        measured = [(number(r, "_batch_size"), number(r, "latency_ms")) for r in rows if series(r) == key]
        points = sorted((x, y) for x, y in measured if x is not None and y is not None)
        if points:
            lines.append(Series(f"{key[0]} {key[1]}, max_seq_length {key[2]}", points, line=True))
    paths = []
    if lines:
        paths.append(sweep_dir / "latency_vs_batch_size.svg")
        chart(
            paths[-1],
            lines,
            title="Latency vs batch size",
            x_label="batch size",
            y_label="model latency, ms/sample",
            log2_x=True,
        )
    jobs = Series(None, [])
    for row in rows:
        latency, value = number(row, "latency_ms"), number(row, quality)
        if latency is not None and value is not None:
            jobs.points.append((latency, value))
            jobs.notes.append(str(row["job"]))  # its overrides: summary.md
    if jobs.points:
        paths.append(sweep_dir / f"{quality}_vs_latency.svg")
        chart(
            paths[-1],
            [jobs],
            title=f"{quality} vs latency",
            x_label="model latency, ms/sample",
            y_label=quality,
        )
    return paths
