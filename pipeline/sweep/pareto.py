"""The quality/latency Pareto front of a sweep (quality: the task's headline metric, e.g. accuracy
or micro_f1): jobs no other job beats on both."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.core.files import atomic_write_text
from pipeline.core.plots import COLORS, GREY, Series, chart
from pipeline.sweep.summary import number


def pareto_columns(quality: str) -> tuple[str, ...]:
    return ("job", "overrides", quality, "latency_ms", "e2e_ms", "agreement_vs_fp32")


Point = tuple[float, float]  # (latency_ms, quality)


def _measured(rows: list[dict[str, object]], quality: str) -> list[tuple[dict[str, object], Point]]:
    """FINISHED jobs that have both a latency and `quality`, each with its point."""
    measured = []
    for row in rows:
        latency, value = number(row, "latency_ms"), number(row, quality)
        if row["status"] == "FINISHED" and latency is not None and value is not None:
            measured.append((row, (latency, value)))
    return measured


def _front(rows: list[dict[str, object]], quality: str) -> list[tuple[dict[str, object], Point]]:
    done = _measured(rows, quality)

    def dominated(latency: float, value: float) -> bool:
        return any(q >= value and t <= latency and (q > value or t < latency) for _, (t, q) in done)

    return sorted(((r, p) for r, p in done if not dominated(*p)), key=lambda measured: measured[1][0])


def pareto_front(rows: list[dict[str, object]], quality: str = "accuracy") -> list[dict[str, object]]:
    """FINISHED jobs for which no other job has higher-or-equal `quality` and lower-or-equal latency
    with one of them strictly better; sorted by latency."""
    return [row for row, _ in _front(rows, quality)]


def write_pareto(sweep_dir: Path, rows: list[dict[str, object]], quality: str = "accuracy") -> list[Path]:
    """pareto.csv, pareto.md and pareto_front.svg in the sweep folder (nothing when no job finished)."""
    on_front = _front(rows, quality)
    front = [row for row, _ in on_front]
    if not front:
        return []
    columns = pareto_columns(quality)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(front)
    atomic_write_text(sweep_dir / "pareto.csv", buffer.getvalue())
    lines = [
        f"# Pareto front: {quality} vs latency",
        "",
        f"Jobs that no other job of the sweep beats on both {quality} and model latency.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
        *("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in front),
    ]
    atomic_write_text(sweep_dir / "pareto.md", "\n".join(lines) + "\n")

    done = [point for _, point in _measured(rows, quality)]
    chart(
        sweep_dir / "pareto_front.svg",
        [
            Series("jobs", done, color=GREY),
            Series(
                "front",
                [point for _, point in on_front],
                line=True,
                color=COLORS[3],
                notes=[str(row["job"]) for row, _ in on_front],
            ),
        ],
        title=f"{quality} vs latency: Pareto front",
        x_label="model latency, ms/sample",
        y_label=quality,
    )
    return [sweep_dir / "pareto.csv", sweep_dir / "pareto.md", sweep_dir / "pareto_front.svg"]
