"""The operator dashboard (/ops/): staff with the `operator` role only.

Pipeline runs with progress, segments with their DP figures (definitions, sizes and
average spend with 95% error bounds) as charts, recommender quality, merge review
(approve a refused merge's refusal, or undo a merge), webhook deliveries and failures,
and ingestion errors. Shows ids, codes and releases, never an exact count of people
(README, "Privacy"); decrypts nothing.
"""

from __future__ import annotations

from uuid import UUID

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from cdp.core.errors import ApplicationError
from cdp.services.conflicts import merge_conflict_apply, merge_conflict_approve
from cdp.services.merges import merge_undo
from cdp.staff import OPERATOR
from web import charts, ops_lists, selectors
from web.filters import (
    AttemptFilterForm,
    DeliveryFilterForm,
    IngestionFilterForm,
    MergeFilterForm,
    RunFilterForm,
    list_filters,
    page_of,
    query_without,
)
from web.staff import actor_of, role_required

operator_only = role_required(OPERATOR)


def _money(value: float) -> str:
    return f"{value:,.2f}"


def segment_charts(overview: dict) -> dict:
    segments = overview["segments"]
    if not segments:
        return {}

    def bars(key: str) -> list[charts.Bar]:
        return [charts.Bar(row["segment"].name, (row[key] or {}).get("value"), (row[key] or {}).get("error_95"))
                for row in segments]

    k = overview["segmentation"].k
    chosen = f"k = {k} segments, the number the pipeline was asked for (a public parameter, not fitted to the data)"
    return {
        "sizes": charts.bar_chart(
            bars("size"), chart_id="segment-sizes", title=f"Segment sizes (differentially private), k = {k}",
            description=f"How many customers each of the {chosen} holds, as released with differential privacy; "
                        "error bars show the 95% error bound."),
        "spend": charts.bar_chart(
            bars("average_spend"), chart_id="segment-spend", fmt=_money,
            title=f"Average spend per segment (differentially private), k = {k}",
            description="Average spend per customer in each segment: noisy total divided by noisy size; error "
                        "bars show the 95% confidence interval."),
    }


@never_cache
@operator_only
def overview(request):
    form = RunFilterForm(request.GET or None, statuses=ops_lists.run_statuses(), triggers=ops_lists.pipeline_triggers())
    search, valid = list_filters(form)
    page = page_of(ops_lists.pipeline_run_list(**search) if valid else [], form.page_number() if form.is_bound else 1)
    segments = selectors.segments_overview()
    evaluation = selectors.recommender_evaluation()
    predictions = selectors.predictions_overview()
    return render(request, "web/ops/overview.html", {
        "form": form, "page": page, "runs": selectors.pipeline_run_rows(page.object_list),
        "query": query_without(request), "segments": segments, "charts": segment_charts(segments),
        "predictions": predictions, "prediction_charts": prediction_charts(predictions) if predictions else {},
        "evaluation": evaluation,
        "evaluation_chart": evaluation_chart(evaluation) if evaluation else None,
        "recommender_runs": selectors.recommender_runs(),
        "quality_alerts": selectors.recommendation_quality_overview(limit=2)["latest_alerts"], "section": "overview"},
        status=200 if valid else 400)


def prediction_charts(overview: dict) -> dict:
    """Churn bands and value brackets (DP counts), and the model's fit check as shares."""
    release = overview["release"]
    result = {}
    if release is not None:
        error = release.error_bound_95
        result["bands"] = charts.bar_chart(
            [charts.Bar(band, value, error) for band, value in release.values["churn_risk"].items()],
            chart_id="churn-bands", title="Customers by churn risk (differentially private)",
            description="Predicted customers per churn-risk band (chance of no order in the next 90 days: high "
                        "at least 80%, medium at least 50%), as released with differential privacy; error bars "
                        "show the 95% error bound.")
        result["values"] = charts.bar_chart(
            [charts.Bar(label, value, error) for label, value in release.values["expected_value"].items()],
            chart_id="value-brackets", title="Customers by expected 90-day value (differentially private)",
            description="Predicted customers per bracket of expected spend in the next 90 days; error bars show "
                        "the 95% error bound.")
    series = [charts.Series("Model (expected)", overview["expected_shares"], [None] * len(overview["expected_shares"]))]
    if overview["observed_shares"]:
        series.append(charts.Series("Observed (differentially private)", overview["observed_shares"],
                                    [overview["observed_error"]] * len(overview["observed_shares"])))
    top = max([*overview["expected_shares"], *overview["observed_shares"], 0.1])
    result["calibration"] = charts.line_chart(
        overview["repeat_labels"], series, chart_id="clv-calibration", y_max=min(1.0, top * 1.15),
        title="Model fit: share of customers by repeat orders",
        description="For each number of repeat orders (0 to 7 or more), the share of customers the fitted model "
                    "expects over each customer's own history, against the observed share (released with "
                    "differential privacy, error bars the 95% bound). Close lines mean a well-calibrated model.")
    return result


def evaluation_chart(evaluation: dict):
    bars = [charts.Bar(row["name"], row["mean"], row["std"]) for row in evaluation["ndcg"]]
    return charts.bar_chart(
        bars, chart_id="recommender-ndcg", width=560, label_width=150, value_width=130, fmt=lambda v: f"{v:.4f}",
        title=f"{evaluation['ndcg_name'].upper()} per model on {evaluation['dataset']}",
        description=f"Mean {evaluation['ndcg_name']} over seeds {', '.join(map(str, evaluation['seeds']))}, with "
                    "one standard deviation across seeds as the error bar: tessera, the baselines, then each "
                    "part of the hybrid alone.")


@never_cache
@operator_only
def merges(request):
    form = MergeFilterForm(request.GET or None, reasons=ops_lists.merge_reasons())
    search, valid = list_filters(form)
    lists = ops_lists.merge_lists(**search) if valid else {"conflicts": [], "merges": []}
    number = form.page_number() if form.is_bound else 1
    conflicts_number = (form.cleaned_data.get("conflicts_page") if form.is_bound and valid else None) or 1
    return render(request, "web/ops/merges.html", {
        **selectors.merge_review(), "form": form, "section": "merges",
        "conflicts_page": page_of(lists["conflicts"], conflicts_number),
        "merges_page": page_of(lists["merges"], number),
        "query": query_without(request, "page", "conflicts_page")}, status=200 if valid else 400)


def _conflict_review(request, conflict_id: UUID, review, done: str):
    try:
        review(conflict_id=conflict_id, actor=actor_of(request))
        messages.success(request, done)
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("web:ops-merges")


@require_POST
@operator_only
def conflict_approve(request, conflict_id: UUID):
    return _conflict_review(request, conflict_id, merge_conflict_approve,
                            "Conflict closed: the profiles stay separate.")


@require_POST
@operator_only
def conflict_apply(request, conflict_id: UUID):
    return _conflict_review(request, conflict_id, merge_conflict_apply, "Link applied and the conflict closed.")


@require_POST
@operator_only
def unmerge(request, merge_id: UUID):
    try:
        merge = merge_undo(merge_id=merge_id, actor=actor_of(request))  # writes the operator action
        messages.success(request, f"Merge undone: profile {merge.absorbed_id} is restored and will not be merged "
                                  "with this one again automatically.")
    except ApplicationError as error:
        messages.error(request, error.message)
    return redirect("web:ops-merges")


@never_cache
@operator_only
def webhooks(request):
    # Two lists, two forms: each is bound only by its own fields (the attempts' are prefixed).
    mine = {"attempts": any(k.startswith("attempts-") for k in request.GET),
            "deliveries": any(not k.startswith("attempts-") for k in request.GET)}
    form = DeliveryFilterForm(request.GET if mine["deliveries"] else None)
    search, valid = list_filters(form)
    deliveries = ops_lists.delivery_list(**search) if valid else []
    attempt_form = AttemptFilterForm(request.GET if mine["attempts"] else None)
    attempt_search, attempts_valid = list_filters(attempt_form)
    attempts = ops_lists.attempt_list(**attempt_search) if attempts_valid else []
    return render(request, "web/ops/webhooks.html", {
        **selectors.webhook_overview(), "form": form, "section": "webhooks", "query": query_without(request),
        "page": page_of(deliveries, form.page_number() if form.is_bound else 1), "attempt_form": attempt_form,
        "attempts_page": page_of(attempts, attempt_form.page_number() if attempt_form.is_bound else 1),
        "attempts_query": query_without(request, "attempts-page")},
        status=200 if valid and attempts_valid else 400)


@never_cache
@operator_only
def ingestion(request):
    form = IngestionFilterForm(request.GET or None, sources=ops_lists.source_keys(), codes=ops_lists.ingestion_codes())
    search, valid = list_filters(form)
    errors = ops_lists.ingestion_error_list(**search) if valid else []
    return render(request, "web/ops/ingestion.html", {
        **selectors.ingestion_errors(), "form": form, "section": "ingestion", "query": query_without(request),
        "page": page_of(errors, form.page_number() if form.is_bound else 1)}, status=200 if valid else 400)
