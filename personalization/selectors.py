"""Reading personalization results for the API: recommendations, segments, members.

Only the newest succeeded run's results are served; segment figures come only from DP
releases (raw sizes, centroids and quality figures stay internal). Consent is the
caller's check for the person (recommendations) and applied here per member (exports).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID

from django.db import connection

from cdp.models import Profile
from consent import policy
from personalization.models import (
    DpRelease,
    PipelineRun,
    Prediction,
    PredictionModel,
    PrivacyBudget,
    PrivacyBudgetChange,
    Recommendation,
    RecommenderEvaluation,
    RunStatus,
    Segment,
    Segmentation,
    SegmentMembership,
)

MEMBERS_SCAN_BATCH = 1000
STATISTIC_NAMES = {"segment_sizes": "size", "segment_total_spend": "total_spend",
                   "segment_average_spend": "average_spend"}


RECOMMENDATION_COLUMNS = ("run_id", "item_id", "title", "score", "rank", "explanation", "model_version", "created_at")


def recommendations_for_profile(*, profile_id: UUID, limit: int) -> dict:
    """The person's recommendations from the newest succeeded run that scored them.

    One indexed query: a run's success retires older runs' rows in the same transaction,
    so normally one run's rows match; the newest wins if a retirement is still pending.
    """
    rows = list(Recommendation.objects.filter(profile_id=profile_id, run__status=RunStatus.SUCCEEDED)
                .order_by("-run_id", "rank").values(*RECOMMENDATION_COLUMNS)[:limit])
    return _recommendations_body(rows)


def profile_with_recommendations(*, profile_id: UUID, limit: int) -> tuple[dict | None, dict]:
    """({status, merged_into_id} or None when no such profile, recommendations_for_profile's body).

    The API reads this on every page view of a shop, so on PostgreSQL it is one round trip
    of plain SQL (the ORM's query building cost more than the query); elsewhere two queries.
    """
    if connection.vendor != "postgresql":
        profile = Profile.objects.filter(pk=profile_id).values("status", "merged_into_id").first()
        return profile, recommendations_for_profile(profile_id=profile_id, limit=limit) if profile else {}
    with connection.cursor() as cursor:
        cursor.execute(_PROFILE_RECOMMENDATIONS_SQL.format(
            profiles=Profile._meta.db_table, recommendations=Recommendation._meta.db_table,
            runs=PipelineRun._meta.db_table), {"profile_id": profile_id, "succeeded": RunStatus.SUCCEEDED,
                                               "limit": limit})
        found = cursor.fetchall()
    if not found:
        return None, {}
    profile = {"status": found[0][0], "merged_into_id": found[0][1]}
    rows = [dict(zip(RECOMMENDATION_COLUMNS, row[2:], strict=True)) for row in found if row[2] is not None]
    for row in rows:
        row["explanation"] = json.loads(row["explanation"])  # jsonb arrives as text (Django's loader)
    return profile, _recommendations_body(rows)


_PROFILE_RECOMMENDATIONS_SQL = """
SELECT profile.status, profile.merged_into_id, rec.run_id, rec.item_id, rec.title, rec.score, rec.rank,
       rec.explanation, rec.model_version, rec.created_at
FROM {profiles} AS profile
LEFT JOIN LATERAL (
    SELECT r.* FROM {recommendations} AS r JOIN {runs} AS run ON run.id = r.run_id
    WHERE r.profile_id = profile.id AND run.status = %(succeeded)s
    ORDER BY r.run_id DESC, r.rank LIMIT %(limit)s
) AS rec ON true
WHERE profile.id = %(profile_id)s
ORDER BY rec.run_id DESC, rec.rank
"""


def _recommendations_body(rows: list[dict]) -> dict:
    if not rows:
        return {"recommendations": [], "generated_at": None, "model_version": None}
    rows = [r for r in rows if r["run_id"] == rows[0]["run_id"]]
    return {
        "recommendations": [{"item_id": r["item_id"], "title": r["title"], "score": round(r["score"], 6),
                             "rank": r["rank"], "explanation": r["explanation"]} for r in rows],
        "generated_at": rows[0]["created_at"].isoformat(),
        "model_version": rows[0]["model_version"],
    }


def prediction_for_profile(*, profile_id: UUID) -> Prediction | None:
    """The person's prediction from the newest succeeded run that made one."""
    return (Prediction.objects.filter(profile_id=profile_id, run__status=RunStatus.SUCCEEDED)
            .order_by("-run_id").first())


def prediction_as_dict(prediction: Prediction) -> dict:
    """The contract's shape of GET /profiles/{id}/predictions (also the export's)."""
    return {"p_alive": prediction.p_alive, "expected_purchases_90d": prediction.expected_purchases_90d,
            "expected_value": float(prediction.expected_value), "churn_risk": prediction.churn_risk,
            "explanation": prediction.explanation, "model_version": prediction.model_version,
            "generated_at": prediction.created_at.isoformat()}


def prediction_model_latest() -> PredictionModel | None:
    return (PredictionModel.objects.filter(run__status=RunStatus.SUCCEEDED).order_by("-run_id")
            .select_related("run").first())


def profiles_by_prediction(*, churn_risk: list[str] | None = None, min_expected_value: float | None = None,
                           max_expected_value: float | None = None, purpose: str = "analytics") -> set[UUID]:
    """Audience rule on predictions: profiles of the newest predictions with a churn band in
    `churn_risk` and an expected 90-day value in the range, that allow `purpose` too."""
    run_id = (Prediction.objects.filter(run__status=RunStatus.SUCCEEDED).order_by("-run_id")
              .values_list("run_id", flat=True).first())
    if run_id is None:
        return set()
    queryset = Prediction.objects.filter(run_id=run_id)
    if churn_risk:
        queryset = queryset.filter(churn_risk__in=churn_risk)
    if min_expected_value is not None:
        queryset = queryset.filter(expected_value__gte=min_expected_value)
    if max_expected_value is not None:
        queryset = queryset.filter(expected_value__lte=max_expected_value)
    ids = list(queryset.values_list("profile_id", flat=True))
    return policy.allowed(ids, purpose) & policy.allowed(ids, "analytics")


def segmentation_latest() -> Segmentation | None:
    return (Segmentation.objects.filter(run__status=RunStatus.SUCCEEDED).order_by("-created_at").first())


def segment_statistics(segmentation: Segmentation) -> dict[str, dict]:
    """Per segment id: the DP releases about it (noisy value, ε, mechanism, error bound)."""
    statistics: dict[str, dict] = {}
    releases = DpRelease.objects.filter(segmentation=segmentation).order_by("created_at")
    for release in releases:
        name = STATISTIC_NAMES.get(release.statistic, release.statistic)
        per_segment_bound = release.details.get("error_bound_95_per_segment", {})
        for segment_id, value in release.values.items():
            statistics.setdefault(segment_id, {})[name] = {
                "value": value,
                "error_95": per_segment_bound.get(segment_id, release.error_bound_95),
                "epsilon": release.epsilon,
                "mechanism": release.mechanism,
                "noise_scale": release.noise_scale,
                "released_at": release.created_at.isoformat(),
            }
    return statistics


def segment_as_dict(segment: Segment, statistics: dict) -> dict:
    return {
        "id": str(segment.id),
        "name": segment.name,
        "segmentation": {"id": str(segment.segmentation_id), "k": segment.segmentation.k,
                         "created_at": segment.segmentation.created_at.isoformat()},
        "statistics": statistics.get(str(segment.id)) or None,
    }


def segment_members_page(*, segment: Segment, purpose: str, after: UUID | None, limit: int,
                         visible: Callable[[list], set] | None = None) -> tuple[list, UUID | None]:
    """Members allowed for `purpose` (and for analytics, which segmented them), in id order.

    Scans memberships past `after` in batches until `limit` allowed members are found, so
    a page is full whenever more allowed members exist. `visible` (the API key's boundary)
    leaves out the people it does not return. Returns (rows, next cursor id).
    """
    found: list[SegmentMembership] = []
    position = after
    while len(found) < limit:
        queryset = SegmentMembership.objects.filter(segment=segment).order_by("profile_id")
        if position is not None:
            queryset = queryset.filter(profile_id__gt=position)
        batch = list(queryset[:MEMBERS_SCAN_BATCH])
        if not batch:
            return found, None
        ids = [m.profile_id for m in batch]
        ok = policy.allowed(ids, purpose) & policy.allowed(ids, "analytics")
        if visible is not None and ok:
            ok &= visible(list(ok))
        for membership in batch:
            if membership.profile_id in ok:
                found.append(membership)
                if len(found) == limit:
                    break
        position = batch[-1].profile_id
        if len(batch) < MEMBERS_SCAN_BATCH and len(found) < limit:
            return found, None
    last = found[-1].profile_id
    more = SegmentMembership.objects.filter(segment=segment, profile_id__gt=last).exists()
    return found, last if more else None


def recommender_evaluation_latest() -> dict | None:
    """The newest stored offline evaluation's document (evaluate_recommender --save)."""
    evaluation = RecommenderEvaluation.objects.order_by("-created_at", "-id").first()
    if evaluation is None:
        return None
    return {**evaluation.document, "stored_at": evaluation.created_at}


def privacy_budget_history(budget: PrivacyBudget) -> list[dict]:
    """Per day with a release or a change of the cap: cumulative ε spent and the cap in force
    at the end of that day, oldest first (the compliance console's chart)."""
    debits = DpRelease.objects.filter(budget=budget, epsilon__gt=0).order_by("created_at").values_list(
        "created_at", "epsilon", "details")
    changes = list(PrivacyBudgetChange.objects.filter(budget=budget, limit="epsilon_limit").order_by("at", "id")
                   .values_list("at", "old_value", "new_value"))
    events = [(at, float(details.get("epsilon_debited", epsilon)), None) for at, epsilon, details in debits]
    events += [(at, 0.0, float(new)) for at, _old, new in changes]
    cap = float(changes[0][1]) if changes else float(budget.epsilon_limit)
    days: dict[str, dict] = {}
    spent = 0.0
    for at, debit, new_cap in sorted(events, key=lambda e: e[0]):
        spent += debit
        cap = new_cap if new_cap is not None else cap
        days[at.date().isoformat()] = {"day": at.date().isoformat(), "spent": round(spent, 6), "cap": cap}
    return list(days.values())
