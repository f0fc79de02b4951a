"""The SVG figures (pipeline.core.plots): valid markup whose shapes follow the data."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pipeline.core.plots import Series, chart, heatmap, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


def test_ticks_are_round_and_cover_the_values() -> None:
    assert nice_ticks(0.81, 0.84) == [0.81, 0.82, 0.83, 0.84]
    assert nice_ticks(0.8, 0.81) == [0.8, 0.802, 0.804, 0.806, 0.808, 0.81]
    assert nice_ticks(0.4, 1.4) == [0.4, 0.6, 0.8, 1.0, 1.2, 1.4]
    assert nice_ticks(3, 3)[0] < 3 < nice_ticks(3, 3)[-1]  # one value: a range around it


def test_a_chart_places_its_points_by_value(tmp_path: Path) -> None:
    path = tmp_path / "latency.svg"
    chart(
        path,
        [Series("a <fast> & b", [(1, 5.0), (4, 1.0), (16, 3.0)], line=True)],
        title="t",
        x_label="batch size",
        y_label="ms",
        log2_x=True,
    )
    figure = ET.parse(path).getroot()  # escaped labels: the markup parses
    xs = [float(c.get("cx", "nan")) for c in figure.iter(SVG + "circle")][:3]
    assert xs[1] - xs[0] == pytest.approx(xs[2] - xs[1])  # 1, 4, 16: equal steps in log2
    ys = [float(c.get("cy", "nan")) for c in figure.iter(SVG + "circle")][:3]
    assert ys[1] > ys[2] > ys[0]  # higher values higher up (smaller y)
    assert len(list(figure.iter(SVG + "polyline"))) == 1
    assert "a <fast> & b" in [t.text for t in figure.iter(SVG + "text")]  # the legend
    with pytest.raises(ValueError, match="nothing to draw"):
        chart(tmp_path / "empty.svg", [Series("none", [])], title="t", x_label="x", y_label="y")
    assert not (tmp_path / "empty.svg").exists()


def test_a_heatmap_has_a_cell_per_count_darkest_for_the_largest(tmp_path: Path) -> None:
    path = tmp_path / "confusion.svg"
    heatmap(path, [[90, 10], [0, 100]], ["negative", "positive"], x_label="predicted", y_label="gold")
    figure = ET.parse(path).getroot()
    cells = [r for r in figure.iter(SVG + "rect") if r.get("width") == "60"]
    assert [c.get("fill") for c in cells][2:] == ["#f7fbff", "#08306b"]  # 0 lightest, 100 darkest
    texts = [t.text for t in figure.iter(SVG + "text")]
    assert texts[:4] == ["90", "10", "0", "100"]
    assert {"negative", "positive", "predicted", "gold"} <= set(texts)
