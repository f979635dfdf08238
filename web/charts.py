"""Charts as server-rendered inline SVG: they need no JavaScript and no outside service.

Each chart carries a <title> and <desc> for screen readers, and the pages put the same
figures in a table beside it. Values about people are released (differentially private)
values with their 95% error bound drawn as an error bar; the offline evaluation's error
bar is its spread across seeds (the chart's description says which).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe (Okabe–Ito), each at least 3:1 against white; markers differ too.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8A6D00", "#56B4E9", "#000000")
MARKERS = ("circle", "square", "diamond", "triangle", "circle", "square", "diamond")


@dataclass
class Bar:
    label: str
    value: float | None
    error: float | None = None


def _num(x: float) -> str:
    return f"{x:.1f}"


def bar_chart(bars: Sequence[Bar], *, chart_id: str, title: str, description: str,
              fmt: Callable[[float], str] = lambda v: f"{v:,.0f}", width: int = 640, label_width: int = 190,
              value_width: int = 170) -> SafeString:
    """Horizontal bars with error bars (value ± error, clamped at zero)."""
    label_w, right_pad, row_h, top = label_width, value_width, 34, 8
    plot_w = width - label_w - right_pad
    height = top * 2 + row_h * max(1, len(bars))
    top_value = max([max(0.0, (b.value or 0) + (b.error or 0)) for b in bars] + [1e-9])
    scale = plot_w / top_value
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
             f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>',
             f'<line class="axis" x1="{label_w}" y1="{top}" x2="{label_w}" y2="{height - top}"/>']
    for i, bar in enumerate(bars):
        y = top + i * row_h
        mid = y + row_h / 2
        parts.append(f'<text class="label" x="{label_w - 8}" y="{_num(mid + 4)}" text-anchor="end">'
                     f'{escape(bar.label[:28])}</text>')
        if bar.value is None:
            parts.append(f'<text class="value" x="{label_w + 6}" y="{_num(mid + 4)}">not released</text>')
            continue
        w = max(0.0, bar.value) * scale
        parts.append(f'<rect class="bar" x="{label_w}" y="{_num(y + 7)}" width="{_num(w)}" '
                     f'height="{row_h - 14}" fill="{PALETTE[0]}"/>')
        end = label_w + w
        if bar.error:
            low = label_w + max(0.0, bar.value - bar.error) * scale
            # A released value is noisy and may be negative: neither end crosses the axis.
            high = label_w + max(0.0, bar.value + bar.error) * scale
            parts.append(f'<g class="errorbar"><line x1="{_num(low)}" y1="{_num(mid)}" x2="{_num(high)}" '
                         f'y2="{_num(mid)}"/><line x1="{_num(low)}" y1="{_num(mid - 7)}" x2="{_num(low)}" '
                         f'y2="{_num(mid + 7)}"/><line x1="{_num(high)}" y1="{_num(mid - 7)}" x2="{_num(high)}" '
                         f'y2="{_num(mid + 7)}"/></g>')
            end = high
        text = fmt(bar.value) + (f" ± {fmt(bar.error)}" if bar.error else "")
        parts.append(f'<text class="value" x="{_num(end + 6)}" y="{_num(mid + 4)}">{escape(text)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped


@dataclass
class Series:
    name: str
    values: list[float | None]
    errors: list[float | None]


def _marker(shape: str, x: float, y: float, colour: str) -> str:
    if shape == "square":
        return f'<rect x="{_num(x - 4.5)}" y="{_num(y - 4.5)}" width="9" height="9" fill="{colour}"/>'
    if shape == "diamond":
        return (f'<polygon points="{_num(x)},{_num(y - 6)} {_num(x + 6)},{_num(y)} {_num(x)},{_num(y + 6)} '
                f'{_num(x - 6)},{_num(y)}" fill="{colour}"/>')
    if shape == "triangle":
        return (f'<polygon points="{_num(x)},{_num(y - 6)} {_num(x + 6)},{_num(y + 5)} '
                f'{_num(x - 6)},{_num(y + 5)}" fill="{colour}"/>')
    return f'<circle cx="{_num(x)}" cy="{_num(y)}" r="4.5" fill="{colour}"/>'


def line_chart(x_labels: Sequence[str], series: Sequence[Series], *, chart_id: str, title: str, description: str,
               y_max: float = 1.0, fmt: Callable[[float], str] = lambda v: f"{v:.0%}",
               width: int = 640, height: int = 300, guides: Sequence[tuple[str, float]] = ()) -> SafeString:
    """Lines over time with error bars at every point; y from 0 to `y_max`. `guides` are
    labelled dashed horizontal lines (thresholds)."""
    left, right, top, bottom = 56, 16, 12, 58
    plot_w, plot_h = width - left - right, height - top - bottom
    legend_rows = (len(series) + 2) // 3
    total_h = height + legend_rows * 22

    def sx(i: int) -> float:
        return left + (plot_w / 2 if len(x_labels) == 1 else plot_w * i / (len(x_labels) - 1))

    def sy(v: float) -> float:
        return top + plot_h - plot_h * max(0.0, min(v, y_max)) / y_max

    parts = [f'<svg class="chart" viewBox="0 0 {width} {total_h}" role="img" '
             f'aria-labelledby="{chart_id}-t {chart_id}-d" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(description)}</desc>']
    for k in range(5):
        v = y_max * k / 4
        y = sy(v)
        parts.append(f'<line class="grid" x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}"/>'
                     f'<text class="tick" x="{left - 6}" y="{_num(y + 4)}" text-anchor="end">{escape(fmt(v))}</text>')
    for label, value in guides:
        y = sy(value)
        parts.append(f'<line class="guide" x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}" '
                     f'stroke="#555" stroke-dasharray="6 4"/><text class="tick" x="{width - right - 4}" '
                     f'y="{_num(y - 4)}" text-anchor="end">{escape(label)}</text>')
    step = max(1, len(x_labels) // 8)
    for i, label in enumerate(x_labels):
        if i % step == 0 or i == len(x_labels) - 1:
            parts.append(f'<text class="tick" x="{_num(sx(i))}" y="{height - bottom + 18}" '
                         f'text-anchor="middle">{escape(label)}</text>')
    # Series side by side around each day, so overlapping error bars stay readable.
    dodge = min(12.0, plot_w / max(1, len(x_labels)) / (len(series) + 1))
    for n, s in enumerate(series):
        colour, shape = PALETTE[n % len(PALETTE)], MARKERS[n % len(MARKERS)]
        offset = (n - (len(series) - 1) / 2) * dodge
        points = [(sx(i) + offset, v, e) for i, (v, e) in enumerate(zip(s.values, s.errors)) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{_num(x)},{_num(sy(v))}" for x, v, _ in points)
            parts.append(f'<polyline class="series" points="{path}" stroke="{colour}" fill="none"/>')
        for x, v, e in points:
            if e:
                lo, hi = sy(max(0.0, v - e)), sy(v + e)
                parts.append(f'<g class="errorbar" stroke="{colour}"><line x1="{_num(x)}" y1="{_num(lo)}" '
                             f'x2="{_num(x)}" y2="{_num(hi)}"/><line x1="{_num(x - 5)}" y1="{_num(lo)}" '
                             f'x2="{_num(x + 5)}" y2="{_num(lo)}"/><line x1="{_num(x - 5)}" y1="{_num(hi)}" '
                             f'x2="{_num(x + 5)}" y2="{_num(hi)}"/></g>')
            parts.append(_marker(shape, x, sy(v), colour))
    for n, s in enumerate(series):
        colour, shape = PALETTE[n % len(PALETTE)], MARKERS[n % len(MARKERS)]
        lx = left + (n % 3) * (plot_w / 3)
        ly = height - 10 + (n // 3) * 22
        parts.append(_marker(shape, lx + 6, ly - 4, colour))
        parts.append(f'<text class="legend" x="{_num(lx + 18)}" y="{_num(ly)}">{escape(s.name)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text above is escaped
