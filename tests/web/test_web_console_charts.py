"""Issue #22, charts that say what they show: consent rates as a real time series (points
only for a single day, lines and a date axis otherwise), the privacy budget against its cap,
one count of releases on the budget page, and the chosen k on the segment charts."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest
from web_helpers import _fresh_cache, ada, bob, officer, officer_client, shop, staff_user  # noqa: F401

from web.charts import Series, line_chart

pytestmark = pytest.mark.django_db


def _plot(svg: str) -> str:
    """The plot without the legend (legend entries follow the last series)."""
    return svg.split('class="legend"')[0]


def test_one_day_is_points_and_several_days_are_lines_on_a_date_axis():
    one = line_chart(["2026-11-01"], [Series("Analytics", [0.4], [0.05])], chart_id="r1", title="t",
                     description="d", x_dates=[date(2026, 11, 1)])
    assert "<circle" in _plot(one) and "<polyline" not in one
    days = [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 11)]
    many = line_chart([d.isoformat() for d in days], [Series("Analytics", [0.4, 0.5, 0.45], [0.05, 0.05, 0.05])],
                      chart_id="r2", title="t", description="d", x_dates=days, x_title="Day")
    assert "<polyline" in many and "<circle" not in many  # a line, no floating points
    assert 'class="band"' in many  # the 95% bound as a band around the line
    assert "1 Nov 2026" in many and "11 Nov 2026" in many and ">Day<" in many
    # Points sit by date: 1 day then 9 days apart, not evenly spaced.
    xs = [float(x) for x in re.findall(r'points="([\d.]+),[\d.]+ ([\d.]+),[\d.]+ ([\d.]+),', many.split(
        "<polyline")[1])[0]]
    assert (xs[2] - xs[1]) == pytest.approx(9 * (xs[1] - xs[0]), rel=0.01)


def _rates_released(day: str, rate: float) -> None:
    """A real consent-rate release whose noisy values are then fixed: with two customers the
    noise can zero the population, and a chart of nothing shows nothing."""
    from consent.policy import PURPOSES
    from personalization.models import DpRelease
    from personalization.privacy import consent_rates_release

    release = consent_rates_release(day=day)
    values = {"population": 100, **{p: {"count": int(100 * rate), "rate": rate, "rate_error_95": 0.05}
                                    for p in PURPOSES}}
    DpRelease.objects.filter(pk=release.pk).update(values=values)


def test_the_console_draws_consent_rates_over_time(officer_client, ada, bob):
    _rates_released("2026-11-01", 0.4)
    single = officer_client.get("/compliance/").content.decode()
    chart = single.split('id="consent-rates-t"')[0].rsplit("<svg", 1)[1] + single.split('id="consent-rates-t"')[1]
    chart = chart.split("</svg>")[0]
    assert "<polyline" not in chart and "<circle" in chart and "one day so far" in chart
    assert "Analytics" in chart and ">analytics<" not in chart  # purposes by name
    _rates_released("2026-11-02", 0.5)
    _rates_released("2026-11-05", 0.45)
    several = officer_client.get("/compliance/").content.decode()
    chart = several.split('id="consent-rates-t"')[1].split("</svg>")[0]
    assert "<polyline" in chart and "5 Nov 2026" in chart and "Day of the release (UTC)" in chart
    assert "<circle" not in _plot(chart)


def test_the_budget_chart_draws_the_cap_and_counts_releases_as_the_list_does(officer_client, ada, bob):
    from personalization.models import DpRelease
    from personalization.privacy import consent_rates_release, derived_release

    first = consent_rates_release(day="2026-11-01")
    second = consent_rates_release(day="2026-11-03")
    for release, day in ((first, 1), (second, 3)):  # paid on those days
        DpRelease.objects.filter(pk=release.pk).update(created_at=datetime(2026, 11, day, 3, tzinfo=UTC))
    derived_release(query_key="consent_rates_share:2026-11-01", statistic="consent_rates", values={},
                    parents=[first], mechanism="post-processing", error_bound_95=0.1)
    page = officer_client.get("/compliance/budget/").content.decode()
    chart = page.split('id="budget-customers-t"')[1].split("</svg>")[0]
    assert chart.count("<polyline") == 2 and 'stroke-dasharray="8 4"' in chart  # spent, and the cap dashed
    assert "Lifetime cap" in chart and "3 Nov 2026" in chart
    listed = page.split('id="releases"')[1].split("</table>")[0].count("<tr><td>")
    assert listed == DpRelease.objects.count() == 3
    count = re.search(r'id="budget-customers-count">(\d+) releases? made', page)
    assert count and int(count.group(1)) == listed
    assert "1 of them derived from earlier releases at no cost" in page
    only_derived = officer_client.get("/compliance/budget/?date_from=2020-01-01&statistic=consent_rates")
    assert only_derived.status_code == 200


def test_the_segment_charts_say_what_they_measure_and_mark_k(staff_user, ada, bob):
    from django.test import Client
    from django.utils import timezone

    from personalization.models import PipelineRun, RunStatus, Segment, Segmentation, Stage
    from personalization.privacy import segment_sizes_release

    run = PipelineRun.objects.create(status=RunStatus.SUCCEEDED, stage=Stage.DONE, active=None,
                                     started_at=timezone.now(), finished_at=timezone.now())
    segmentation = Segmentation.objects.create(run=run, k=3, seed=42, model={})
    for index, name in enumerate(["Loyal", "New", "Lapsed"]):
        Segment.objects.create(segmentation=segmentation, index=index, name=name, centroid={})
    segment_sizes_release(segmentation=segmentation, run_id=run.id)
    client = Client()
    client.force_login(staff_user("opsy", "operator"))
    html = client.get("/ops/").content.decode()
    sizes = html.split('id="segment-sizes-t"')[1].split("</desc>")[0]
    assert "k = 3" in sizes and "How many customers each of the k = 3 segments" in sizes
    quality = html.split('id="quality-heading"')[1].split("</section>")[0]
    assert "silhouette" in quality and "k = 3" in quality


def test_console_pages_show_no_raw_keys(officer_client, officer, ada, bob):
    from consent.services.retention import retention_rule_set
    from personalization.privacy import DATASET, consent_rates_release, privacy_budget_limits_change

    consent_rates_release(day="2026-11-01")
    privacy_budget_limits_change(dataset=DATASET, actor=f"staff:{officer.pk}", reason="Plan", epsilon_limit=20)
    retention_rule_set(kind="events", days=30, actor=f"staff:{officer.pk}")
    for path in ("/compliance/", "/compliance/budget/", "/compliance/configuration/", "/compliance/ledger/"):
        html = officer_client.get(path).content.decode()
        text = re.sub(r"<[^>]+>", " ", html.split('<main id="main"', 1)[1])
        for raw in ("sale_sharing", "staff:", "epsilon_limit", "retention_rule_set", "operator_action"):
            assert raw not in text, (path, raw)


def test_legend_entries_leave_room_for_their_names():
    """"Personalized recommendations" no longer runs into the next entry of the legend."""
    names = ["Analytics", "Personalized recommendations", "Marketing", "Data from partners", "Sale and sharing"]
    svg = line_chart(["2026-11-01"], [Series(n, [0.3], [0.05]) for n in names], chart_id="l1", title="t",
                     description="d", x_dates=[date(2026, 11, 1)])
    entries = [(float(x), float(y), name) for x, y, name in
               re.findall(r'<text class="legend" x="([\d.]+)" y="([\d.]+)">([^<]+)</text>', svg)]
    assert [e[2] for e in entries] == names
    for (x1, y1, name), (x2, y2, _) in zip(entries, entries[1:], strict=False):
        if y1 == y2:  # same row
            assert x2 - x1 >= len(name) * 7, (name, x1, x2)
