"""Reading personalization results for the API: recommendations, segments, members.

Only the newest succeeded run's results are served; segment figures come only from DP
releases (raw sizes, centroids and quality figures stay internal). Consent is checked
here, for the person (recommendations) and per member (listings), and the readers that
hand a person's data to someone write the access-log rows themselves.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from uuid import UUID

from django.db import connection

from cdp.core.errors import Conflict, Gone, NotFound
from cdp.core.http.pagination import Page, paginate
from cdp.models import Profile, ProfileStatus
from consent import policy
from consent.services.access import Accessor, personal_data_read, subject_signals_honour
from personalization.errors import ConsentRequired, PersonalizationErrorCode
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

STATISTIC_NAMES = {"segment_sizes": "size", "segment_total_spend": "total_spend",
                   "segment_average_spend": "average_spend"}


RECOMMENDATION_COLUMNS = ("run_id", "item_id", "title", "score", "rank", "explanation", "model_version", "created_at",
                          "as_of")


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
       rec.explanation, rec.model_version, rec.created_at, rec.as_of
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
        return {"recommendations": [], "generated_at": None, "model_version": None, "as_of": None}
    rows = [r for r in rows if r["run_id"] == rows[0]["run_id"]]
    return {
        "recommendations": [{"item_id": r["item_id"], "title": r["title"], "score": round(r["score"], 6),
                             "rank": r["rank"], "explanation": r["explanation"]} for r in rows],
        "generated_at": rows[0]["created_at"].isoformat(),
        "model_version": rows[0]["model_version"],
        "as_of": rows[0]["as_of"].isoformat() if rows[0]["as_of"] else None,
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


def segments_page(*, query_params: Mapping) -> tuple[Page, dict[str, dict]]:
    """A page of the latest segmentation's segments in index order, with their latest DP
    statistics (segment_statistics); an empty page before any segmentation."""
    segmentation = segmentation_latest()
    page = paginate(Segment.objects.filter(segmentation=segmentation).select_related("segmentation"),
                    query_params=query_params, ordering=("index",))
    return page, segment_statistics(segmentation) if page.rows else {}


def segment_members_page(*, segment: Segment, purpose: str, query_params: Mapping, accessor: Accessor,
                         visible: Callable[[list], set] | None = None) -> Page:
    """A page of the members allowed for `purpose` (and for analytics, which segmented
    them), in profile id order; `visible` (the API key's boundary) leaves out the people
    it does not return. One access-log row per member listed."""

    def allowed(batch: list) -> list:
        ids = [m.profile_id for m in batch]
        ok = policy.allowed(ids, purpose) & policy.allowed(ids, "analytics")
        if visible is not None and ok:
            ok &= visible(list(ok))
        return [m for m in batch if m.profile_id in ok]

    page = paginate(SegmentMembership.objects.filter(segment=segment), query_params=query_params,
                    ordering=("profile_id",), keep=allowed)
    personal_data_read(accessor=accessor, profile_ids=[m.profile_id for m in page.rows],
                       fields=["segment_membership"], purpose=purpose)
    return page


def profile_recommendations_read(*, profile_id: UUID, limit: int, accessor: Accessor) -> dict:
    """The recommendations body for `accessor`: 404 unknown, 410 erased, 409 merged (naming
    the survivor), 403 without `personalization` consent. Honours the request's GPC signal;
    a non-empty list is logged."""
    profile, body = profile_with_recommendations(profile_id=profile_id, limit=limit)
    profile_live_check(profile)
    if not policy.is_allowed(profile_id, "personalization"):
        raise ConsentRequired("The person has not allowed personalization.")
    subject_signals_honour(accessor=accessor, profile_id=profile_id)
    if body["recommendations"]:
        personal_data_read(accessor=accessor, profile_ids=[profile_id], fields=["recommendations"],
                           purpose="personalization")
    return body


def profile_predictions_read(*, profile_id: UUID, accessor: Accessor) -> dict:
    """The person's latest predictions for `accessor`: 404 unknown or none yet, 410 erased,
    409 merged, 403 without `analytics` consent. Honours the request's GPC signal; logged."""
    profile_live_check(Profile.objects.filter(pk=profile_id).values("status", "merged_into_id").first())
    if not policy.is_allowed(profile_id, "analytics"):
        raise ConsentRequired("The person has not allowed analytics.")
    subject_signals_honour(accessor=accessor, profile_id=profile_id)
    prediction = prediction_for_profile(profile_id=profile_id)
    if prediction is None:
        raise NotFound("No prediction has been made for this profile yet.",
                       code=PersonalizationErrorCode.NO_PREDICTION)
    personal_data_read(accessor=accessor, profile_ids=[profile_id], fields=["predictions"], purpose="analytics")
    return prediction_as_dict(prediction)


def profile_live_check(profile: dict | None) -> None:
    """404 unknown, 410 erased, 409 merged (naming the survivor)."""
    if profile is None:
        raise NotFound("No profile has this id.")
    if profile["status"] == ProfileStatus.ERASED:
        raise Gone("The profile was erased.", code=PersonalizationErrorCode.PROFILE_ERASED)
    if profile["status"] == ProfileStatus.MERGED:
        raise Conflict("The profile was merged into another.", code=PersonalizationErrorCode.PROFILE_MERGED,
                       extra={"merged_into": str(profile["merged_into_id"])})


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


def profile_ids_with_recommendations(*, limit: int) -> list[UUID]:
    """Up to `limit` people holding recommendations, by id (the demo's sign-in page)."""
    return list(Recommendation.objects.order_by("profile_id").values_list("profile_id", flat=True)
                .distinct()[:limit])
