"""/ops/recommendations/: what the served lists do beyond accuracy, and operators' oversight.

Per run: catalogue coverage, Gini of exposure, intra-list diversity and popularity
miscalibration as a chart with the alert thresholds (settings TESSERA_QUALITY_*) drawn in,
novelty and the coverage gap between segments in the table, and the alerts of each run.
Operators block an item from every list or pin one first for a segment, with a reason;
each change goes to the audit trail (personalization.services.oversight). Operators only;
every form carries Django's CSRF token.
"""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from cdp.core.errors import ApplicationError
from personalization.services.oversight import (
    recommendation_override_create,
    recommendation_override_lift,
    segment_names,
)
from web import charts, selectors
from web.forms import RecommendationOverrideForm
from web.staff import actor_of
from web.views.ops import operator_only

CHARTED = (("coverage", "Catalogue coverage"), ("gini", "Gini of exposure"), ("ild", "Intra-list diversity"),
           ("miscalibration", "Popularity miscalibration"))


def quality_chart(overview: dict):
    runs = overview["runs"]
    if not runs:
        return None
    thresholds = overview["thresholds"]
    series = [charts.Series(label, [run["quality"].get(key) for run in runs], [None] * len(runs))
              for key, label in CHARTED]
    guides = [("coverage floor", thresholds["min_coverage"]), ("Gini ceiling", thresholds["max_gini"]),
              ("miscalibration ceiling", thresholds["max_miscalibration"])]
    return charts.line_chart(
        [f"#{run['id']}" for run in runs], series, chart_id="recommendation-quality", fmt=lambda v: f"{v:.2f}",
        guides=guides, title="Served recommendations per pipeline run",
        description="For each succeeded run, oldest first: the share of the catalogue recommended to anyone, the "
                    "Gini coefficient of how often each item is shown, the mean dissimilarity of categories within "
                    "a list, and the popularity miscalibration between people's histories and their lists. Dashed "
                    "lines are the alert thresholds.")


def _page(request, form: RecommendationOverrideForm | None = None):
    quality = selectors.recommendation_quality_overview()
    return render(request, "web/ops/recommendations.html", {
        "quality": quality, "quality_chart": quality_chart(quality),
        "overrides": selectors.recommendation_overrides(),
        "form": form or RecommendationOverrideForm(segment_names=segment_names()), "section": "recommendations"})


@never_cache
@operator_only
def recommendations(request):
    return _page(request)


@require_POST
@operator_only
def override_create(request):
    form = RecommendationOverrideForm(request.POST, segment_names=segment_names())
    if not form.is_valid():
        return _page(request, form)
    try:
        override = recommendation_override_create(actor=actor_of(request), **form.cleaned_data)
    except ApplicationError as error:
        form.add_error(None, error.message)
        return _page(request, form)
    done = "blocked from every list" if override.kind == "block" else "pinned first"
    messages.success(request, f"Item {override.item_id} {done} from the next lists computed.")
    return redirect("web:ops-recommendations")


@require_POST
@operator_only
def override_lift(request, override_id: int):
    try:
        recommendation_override_lift(override_id=override_id, actor=actor_of(request))
        messages.success(request, "Lifted: the next lists computed no longer apply it.")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("web:ops-recommendations")
