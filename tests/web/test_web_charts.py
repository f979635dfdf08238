"""Server-rendered SVG charts: accessible, escaped, honest about missing values."""

from __future__ import annotations

from web.charts import Bar, Series, bar_chart, line_chart


def test_bar_chart_draws_error_bars_and_escapes_labels():
    svg = bar_chart([Bar("<script>x</script>", 120, 10), Bar("Quiet", None)], chart_id="c1", title="Sizes & more",
                    description="Per segment.")
    assert svg.startswith('<svg class="chart"') and 'role="img"' in svg and 'aria-labelledby="c1-t c1-d"' in svg
    assert "<title id=\"c1-t\">Sizes &amp; more</title>" in svg
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'class="errorbar"' in svg and "120 ± 10" in svg
    assert "not released" in svg


def test_error_bars_never_go_below_zero():
    svg = bar_chart([Bar("Small", 2, 50)], chart_id="c2", title="t", description="d")
    assert 'x1="190.0"' in svg  # the lower whisker starts at the axis


def test_line_chart_with_one_day_and_gaps():
    svg = line_chart(["2026-11-01"], [Series("analytics", [0.4], [0.05]), Series("marketing", [None], [None])],
                     chart_id="c3", title="Rates", description="d")
    assert svg.count("<circle") >= 2  # the point and the legend marker
    assert "analytics" in svg and "marketing" in svg and "40%" not in svg.split("<text")[0]
    assert "<polyline" not in svg  # one point: no line
    two = line_chart(["d1", "d2"], [Series("a", [0.1, 0.2], [0.01, None])], chart_id="c4", title="t",
                     description="d")
    assert "<polyline" in two
