"""The quality/latency Pareto front of a sweep (quality: the task's headline metric, e.g. accuracy
or micro_f1): jobs no other job beats on both."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pipeline.core.files import atomic_write_text
from pipeline.core.plots import new_figure, save_figure


def pareto_columns(quality: str) -> tuple[str, ...]:
    return ("job", "overrides", quality, "latency_ms", "e2e_ms", "agreement_vs_fp32")


def _measured(rows: list[dict[str, object]], quality: str) -> list[dict[str, object]]:
    return [r for r in rows if r["status"] == "FINISHED" and quality in r and "latency_ms" in r]


def pareto_front(rows: list[dict[str, object]], quality: str = "accuracy") -> list[dict[str, object]]:
    """FINISHED jobs for which no other job has higher-or-equal `quality` and lower-or-equal latency
    with one of them strictly better; sorted by latency."""
    done = _measured(rows, quality)

    def dominated(row: dict[str, object]) -> bool:
        return any(
            o[quality] >= row[quality]
            and o["latency_ms"] <= row["latency_ms"]
            and (o[quality] > row[quality] or o["latency_ms"] < row["latency_ms"])
            for o in done
        )

    return sorted((r for r in done if not dominated(r)), key=lambda r: float(r["latency_ms"]))


def write_pareto(sweep_dir: Path, rows: list[dict[str, object]], quality: str = "accuracy") -> list[Path]:
    """pareto.csv, pareto.md and pareto_front.png in the sweep folder (nothing when no job finished)."""
    front = pareto_front(rows, quality)
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

    done = _measured(rows, quality)
    figure, axes = new_figure(6, 4)
    axes.scatter([r["latency_ms"] for r in done], [r[quality] for r in done], color="lightgray", label="jobs")
    axes.plot(
        [r["latency_ms"] for r in front],
        [r[quality] for r in front],
        marker="o",
        color="tab:red",
        label="front",
    )
    for r in front:
        axes.annotate(str(r["job"]), (r["latency_ms"], r[quality]), fontsize=7)
    axes.set_xlabel("model latency, ms/sample")
    axes.set_ylabel(quality)
    axes.set_title(f"{quality} vs latency: Pareto front")
    axes.legend()
    save_figure(figure, sweep_dir / "pareto_front.png")
    return [sweep_dir / "pareto.csv", sweep_dir / "pareto.md", sweep_dir / "pareto_front.png"]
