"""Server-rendered SVG charts: accessible, escaped, honest about missing values."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web.charts import Bar, Series, bar_chart, line_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_bar_chart_draws_error_bars_and_escapes_labels():
    svg = bar_chart([Bar("<script>x</script>", 120, 10), Bar("Quiet", None)], chart_id="c1", title="Sizes & more",
                    description="Per segment.")
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg and 'aria-labelledby="c1-t c1-d"' in svg
    assert "<title id=\"c1-t\">Sizes &amp; more</title>" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="errorbar"' in svg and "120 ± 10" in svg
    assert "not released" in svg


def _geometry(svg: str):
    """The axis's x, and per drawn bar its rectangle's width and its error bar's two ends."""
    root = ElementTree.fromstring(svg)  # noqa: S314 - our own SVG, just rendered
    axis = float(next(e for e in root.iter(f"{SVG}line") if e.get("class") == "axis").get("x1"))
    widths = [float(e.get("width")) for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]
    whiskers = []
    for group in root.iter(f"{SVG}g"):
        if group.get("class") == "errorbar":
            span = group.find(f"{SVG}line")
            whiskers.append((float(span.get("x1")), float(span.get("x2"))))
    return axis, widths, whiskers


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(-50, 1000), st.floats(0.5, 600)), min_size=1, max_size=6))
def test_error_bars_are_value_plus_minus_error_clamped_at_the_axis(bars):
    """Released values are noisy: an error larger than the value (or a negative value) must
    not draw a whisker left of the axis, and both ends must sit at value ± error on the scale."""
    svg = bar_chart([Bar(f"s{i}", value, error) for i, (value, error) in enumerate(bars)], chart_id="c2",
                    title="t", description="d", width=640, label_width=190, value_width=170)
    axis, widths, whiskers = _geometry(svg)
    scale = (640 - 190 - 170) / max([max(0.0, v + e) for v, e in bars] + [1e-9])  # the widest fills the plot
    assert len(whiskers) == len(widths) == len(bars)
    for (value, error), width, (low, high) in zip(bars, widths, whiskers, strict=True):
        assert width == pytest.approx(max(value, 0) * scale, abs=0.06)
        assert axis <= low <= high
        assert low == pytest.approx(axis + max(0.0, value - error) * scale, abs=0.06)
        assert high == pytest.approx(axis + max(0.0, value + error) * scale, abs=0.06)


def test_line_chart_with_one_day_and_gaps():
    svg = line_chart(["2026-11-01"], [Series("analytics", [0.4], [0.05]), Series("marketing", [None], [None])],
                     chart_id="c3", title="Rates", description="d")
    assert svg.count("<circle") >= 2  # the point and the legend marker
    assert "analytics" in svg and "marketing" in svg and "40%" not in svg.split("<text")[0]
    assert "<polyline" not in svg  # one point: no line
    two = line_chart(["d1", "d2"], [Series("a", [0.1, 0.2], [0.01, None])], chart_id="c4", title="t",
                     description="d")
    assert "<polyline" in two
