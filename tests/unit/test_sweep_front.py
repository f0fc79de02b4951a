"""A sweep's Pareto front and plots from its rows (pipeline.sweep.pareto, summary), without jobs."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

from pipeline.core.plots import COLORS, GREY
from pipeline.sweep.pareto import pareto_front, write_pareto
from pipeline.sweep.summary import number

SVG = "{http://www.w3.org/2000/svg}"
ROWS: list[dict[str, object]] = [
    {"job": "0", "overrides": "a", "status": "FINISHED", "accuracy": 0.9, "latency_ms": 2.0},
    {"job": "1", "overrides": "b", "status": "FINISHED", "accuracy": 0.8, "latency_ms": 1, "_batch_size": 8},
    # Beaten by job 0 on both.
    {"job": "2", "overrides": "c", "status": "FINISHED", "accuracy": 0.85, "latency_ms": 2.5},
    # As good as job 1 on both: neither beats the other.
    {"job": "3", "overrides": "d", "status": "FINISHED", "accuracy": 0.8, "latency_ms": 1.0},
    # Not measured: no latency, or not FINISHED.
    {"job": "4", "overrides": "e", "status": "FINISHED", "accuracy": 0.99},
    {"job": "5", "overrides": "f", "status": "FAILED", "error": "boom", "accuracy": 1.0, "latency_ms": 0.1},
]


def test_the_front_holds_the_finished_jobs_no_other_beats_on_both_sorted_by_latency() -> None:
    assert [row["job"] for row in pareto_front(ROWS)] == ["1", "3", "0"]
    assert [row["job"] for row in pareto_front(ROWS, "micro_f1")] == []  # no job has it
    assert pareto_front([], "micro_f1") == []


def test_a_row_value_is_a_number_only_where_the_job_has_one() -> None:
    assert number(ROWS[0], "accuracy") == 0.9
    assert number(ROWS[1], "_batch_size") == 8.0
    assert number(ROWS[2], "_batch_size") is None
    assert number(ROWS[5], "error") is None


def test_write_pareto_writes_the_table_and_the_plot(tmp_path: Path) -> None:
    written = write_pareto(tmp_path, ROWS, "accuracy")
    assert [p.name for p in written] == ["pareto.csv", "pareto.md", "pareto_front.svg"]
    table = list(csv.DictReader((tmp_path / "pareto.csv").open()))
    assert [(r["job"], r["accuracy"], r["latency_ms"]) for r in table] == [
        ("1", "0.8", "1"),
        ("3", "0.8", "1.0"),
        ("0", "0.9", "2.0"),
    ]
    figure = ET.parse(tmp_path / "pareto_front.svg").getroot()
    fills = [c.get("fill") for c in figure.iter(SVG + "circle")]
    assert fills.count(GREY) == 4 + 1 and fills.count(COLORS[3]) == 3 + 1  # the points and the legend's
    assert [t.text for t in figure.iter(SVG + "text")][-5:-2] == ["1", "3", "0"]  # the front, by job
    assert write_pareto(tmp_path / "none", ROWS[4:], "accuracy") == []


def test_the_summary_plots_draw_the_measured_jobs(tmp_path: Path) -> None:
    from pipeline.sweep.summary import _plots

    done = [{**row, "_device": "cpu", "_precision": "fp32", "_max_seq_length": 128} for row in ROWS[:4]]
    paths = _plots(done, tmp_path, "accuracy")
    assert [p.name for p in paths] == ["latency_vs_batch_size.svg", "accuracy_vs_latency.svg"]
    latency, accuracy = (ET.parse(path).getroot() for path in paths)
    assert len(list(latency.iter(SVG + "polyline"))) == 0  # one job has a batch size: a point, no line
    assert len(list(accuracy.iter(SVG + "circle"))) == 4
    assert {"0", "1", "2", "3"} <= {t.text for t in accuracy.iter(SVG + "text")}
