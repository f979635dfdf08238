"""What the pages show, read through the other apps' selectors where they have one.

Consent is read only through its public interface (`consent.policy`, `consent.selectors`,
its registry); where the profile, webhook and personalization apps have no public reader
yet (lists for the dashboard) the queries are read-only and live here. The one write: a
reader that shows a subject to someone records it in the access log itself
(`subject_timeline`), so no page can forget. Decrypted personal data is read in one place
only: the subject look-up resolves an identifier the officer typed, without decrypting.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cdp.models import Item, MergeConflict, Source
from cdp.segment.models import IngestionError
from cdp.services.conflicts import APPLICABLE_REASONS
from cdp.webhooks.models import DeliveryStatus, WebhookDelivery
from consent import policy, registry
from consent.policy import PURPOSES, Basis, effective_states
from consent.selectors import (
    CONFIGURATION_TITLES,
    access_log_search,
    configuration_changes,
    consent_decisions,
    consent_events_query,
    dsr_rows,
    dsr_search,
    notice_text,
    subject_records,
)
from consent.services.access import operator_action_event
from personalization.models import (
    DpRelease,
    PipelineRun,
    PrivacyBudget,
    RecommendationOverride,
    RunStatus,
    Segment,
)
from personalization.selectors import (
    prediction_model_latest,
    privacy_budget_history,
    recommendations_for_profile,
    recommender_evaluation_latest,
    segment_statistics,
    segmentation_latest,
)
from personalization.services.pipeline import pipeline_progress
from web import labels
from web.filters import page_of

# What the "Why am I seeing this?" panel names, in words, without internal percentages. Only
# shared categories are shown as attributes: single description words read as noise.
PART_NAMES = {"collaborative": "Customers with similar taste", "content": "Similar to items you chose",
              "segment_popularity": "Popular in your segment", "popularity": "Popular with everyone",
              "exposure": "Balanced so that more of our range gets seen"}
STATUS_WORDS = {"granted": "On", "withdrawn": "Off (you withdrew your consent)", "declined": "Off (you said no)",
                "not_recorded": "Off (never asked)",
                "expired": "Off (your consent expired)", "reconsent_required": "Off (the notice changed)"}


def source_names() -> dict[str, str]:
    return dict(Source.objects.values_list("key", "name"))


def purpose_titles(language: str = "en") -> dict[str, str]:
    return {p: notice_text(purpose=p, language=language)["title"] for p in PURPOSES}


# --- the preference center ---------------------------------------------------------------------------


def me_purposes(*, profile_id: UUID, language: str) -> list[dict]:
    """Every purpose with the current notice (text, version) and what the person decided."""
    rows = []
    events = list(consent_events_query(profile_id=profile_id))
    words = consent_decisions(events)
    last = {e.purpose: words[e.id] for e in sorted(events, key=lambda e: (e.occurred_at, e.recorded_at, e.seq))}
    for state in effective_states(profile_id):
        text = notice_text(purpose=state["purpose"], language=language)
        basis = state["basis"]
        status = last.get(state["purpose"], state["status"]) if state["status"] == "withdrawn" else state["status"]
        rows.append({
            "purpose": state["purpose"], "title": text["title"], "body": text["body"], "language": text["language"],
            "version": text["version"], "granted": state["granted"], "status": state["status"], "basis": basis,
            "status_text": ("On (needed to serve you)" if basis == Basis.CONTRACT
                            else "On unless you object" if basis == Basis.LEGITIMATE_INTEREST and state["granted"]
                            else STATUS_WORDS.get(status, status)),
            "changeable": basis != Basis.CONTRACT,
            "agreed_version": state["notice_version"] if state["status"] != "not_recorded" else None,
            "updated_at": state["updated_at"], "expires_at": state["expires_at"],
        })
    return rows


def me_recommendations(*, profile_id: UUID, limit: int = 10) -> dict:
    """The person's recommendations (empty unless personalization is allowed now)."""
    if not policy.is_allowed(profile_id, "personalization"):
        return {"allowed": False, "recommendations": [], "generated_at": None}
    body = recommendations_for_profile(profile_id=profile_id, limit=limit)
    body["made_at"] = parse_datetime(body["generated_at"]) if body.get("generated_at") else None
    names, titles = source_names(), purpose_titles()
    for rec in body["recommendations"]:
        explanation = rec.get("explanation") or {}
        rec["why"] = {
            "text": explanation.get("text", ""),
            "because_of": explanation.get("because_of", []),
            "segment": explanation.get("segment"),
            "categories": list(dict.fromkeys(a["value"] for a in explanation.get("matched_attributes", [])
                                             if a.get("name") == "category")),
            "parts": [PART_NAMES.get(part, part.replace("_", " ")) for part, share in
                      sorted((explanation.get("parts") or {}).items(), key=lambda p: -p[1]) if share],
            "pinned": explanation.get("pinned"),
            "fallback": explanation.get("fallback"),
            "sources": [names.get(key, key) for key in explanation.get("data_sources", [])],
            "purposes": [{"purpose": p, "title": titles.get(p, p)} for p in explanation.get("purposes", [])],
        }
    return {"allowed": True, **body}


def me_consent_events(*, profile_id: UUID) -> list:
    """The newest 200 decisions, each with its word (declined or withdrawn read the whole history)."""
    events = list(consent_events_query(profile_id=profile_id).order_by("-recorded_at", "-seq"))
    words, lapsed = consent_decisions(events), policy.consent_grants_lapsed(events)
    for event in events:
        event.decision = words[event.id]
        event.lapsed = lapsed.get(event.id, (None, None))[0]  # expired or reconsent_required
    return events[:200]


# --- the compliance console ---------------------------------------------------------------------------


def consent_rates_over_time(*, days: int = 90) -> dict:
    """Consent rates per purpose from the daily DP releases (noisy values with 95% bounds)."""
    since = timezone.now() - timedelta(days=days)
    releases = list(DpRelease.objects.filter(statistic="consent_rates", created_at__gte=since)
                    .order_by("created_at"))
    labels = [r.query_key.split(":", 1)[-1] for r in releases]
    series = {p: {"values": [], "errors": []} for p in PURPOSES}
    for release in releases:
        for purpose in PURPOSES:
            entry = release.values.get(purpose) or {}
            series[purpose]["values"].append(entry.get("rate"))
            series[purpose]["errors"].append(entry.get("rate_error_95"))
    rows = [{"day": label, "cells": [
        {"rate": _percent(series[p]["values"][i]), "error": _percent(series[p]["errors"][i])} for p in PURPOSES]}
        for i, label in enumerate(labels)]
    latest = releases[-1] if releases else None
    return {"labels": labels, "series": series, "rows": rows, "latest": latest,
            "epsilon": sum(r.epsilon for r in releases)}


def _percent(value) -> float | None:
    return None if value is None else round(100 * float(value), 1)


def privacy_budgets() -> list[dict]:
    """Each data set's lifetime budget, this month's pace, the months and the cap changes."""
    period = timezone.now().strftime("%Y-%m")
    rows = []
    for budget in PrivacyBudget.objects.order_by("dataset"):
        spent, limit = float(budget.epsilon_spent), float(budget.epsilon_limit)
        months = list(budget.periods.order_by("-period")[:24])
        this_month = next((m for m in months if m.period == period), None)
        rows.append({"budget": budget, "spent": spent, "limit": limit,
                     "percent": round(100 * spent / limit) if limit else 0,
                     "period": period, "period_spent": float(this_month.epsilon_spent) if this_month else 0.0,
                     "period_limit": float(budget.period_epsilon_limit), "months": months,
                     "changes": list(budget.changes.order_by("-at", "-id")[:50]),
                     # Counted as the releases list counts them: every release, the derived
                     # ones (post-processing, ε = 0) among them; the budget's own counter
                     # counts only the releases it paid for.
                     "released": budget.releases_made.count(),
                     "derived": budget.releases_made.filter(epsilon=0).count(),
                     "history": privacy_budget_history(budget)})
    return rows


def dp_releases(*, statistic: str | None = None, since=None, until=None):
    """Every release, newest first (a query: the console pages through it)."""
    conditions = {"statistic": statistic, "created_at__gte": since, "created_at__lt": until}
    return (DpRelease.objects.filter(**{k: v for k, v in conditions.items() if v not in (None, "")})
            .select_related("budget").order_by("-created_at", "-id"))


def dp_statistics() -> list[str]:
    return sorted(set(DpRelease.objects.values_list("statistic", flat=True).distinct()))


def configuration_history(*, action: str = "", actor: str = "", since=None, until=None, number: int = 1):
    """A page of staff changes to consent configuration, newest first: when, who, what, and
    each field's value before and after. The page shows staff by user name (`{% actor %}`):
    it is for staff only."""
    conditions = {"purpose": action, "actor": actor, "at__gte": since, "at__lt": until}
    page = page_of(configuration_changes().filter(**{k: v for k, v in conditions.items() if v}), number)
    page.object_list = configuration_rows(page.object_list)
    return page


def configuration_rows(entries) -> list[dict]:
    rows = []
    for entry in entries:
        detail = entry.detail or {}
        recorded = "after" in detail  # entries from before the change recorded the new values only
        before, after = (detail.get("before"), detail.get("after")) if recorded else (None, detail)
        old, new = dict(_flat(before or {})), dict(_flat(after or {}))
        fields = [{"name": name, "before": labels.setting_value(name, old.get(name)),
                   "after": labels.setting_value(name, new.get(name)), "changed": old.get(name) != new.get(name)}
                  for name in dict.fromkeys([*old, *new])]
        rows.append({"at": entry.at, "who": entry.actor, "action": entry.purpose,
                     "title": CONFIGURATION_TITLES.get(entry.purpose, entry.purpose), "fields": fields,
                     "new": recorded and before is None, "before_recorded": recorded})
    return rows


def _flat(value: dict, prefix: str = ""):
    for key, item in value.items():
        if isinstance(item, dict):
            yield from _flat(item, f"{prefix}{key} ")
        else:
            yield f"{prefix}{key}", item


def subject_aliases(profile_id: UUID) -> list[UUID]:
    return [UUID(str(a)) for result in registry.run(registry.ALIASES, profile_id=profile_id) for a in result]


def subject_status(profile_id: UUID) -> dict:
    if not registry.has_handlers(registry.CANONICAL):
        return {"status": "active", "profile_id": profile_id}
    return registry.run(registry.CANONICAL, profile_id=profile_id)[0]


def subject_timeline(*, profile_id: UUID, actor: str, by: str) -> dict:
    """Everything the console shows about one subject: pseudonymous ids, codes and hashes.
    The look-up (who, whom, found by which kind of identifier) is logged first."""
    operator_action_event(actor=actor, action="subject_lookup", profile_id=profile_id, detail={"by": by})
    status = subject_status(profile_id)
    subjects = [profile_id, *subject_aliases(profile_id)]
    states = effective_states(profile_id) if status["status"] == "active" else []
    records = subject_records(subject_ids=subjects)
    words = consent_decisions(records["events"])
    for event in records["events"]:
        event.decision = words[event.id]  # declined (first refusal) or withdrawn (after a grant)
    ever_granted = {event.purpose for event in records["events"] if event.granted}
    for state in states:  # the state table says "withdrawn" for both; the history tells them apart
        if state["status"] == "withdrawn" and state["purpose"] not in ever_granted:
            state["status"] = "declined"
    return {"profile_id": profile_id, "status": status, "aliases": subjects[1:], "states": states, **records}


# --- the operator dashboard -------------------------------------------------------------------------


def pipeline_run_rows(runs) -> list[dict]:
    """Each run (one page of web.ops_lists.pipeline_run_list) with its progress and problems."""
    rows = []
    for run in runs:
        progress = pipeline_progress(run_id=run.id)
        total = progress["total"] or 1
        rows.append({"run": run, "done": progress["done"], "total": progress["total"],
                     "percent": min(100, round(100 * progress["done"] / total)),
                     "failures": [e for e in run.errors if e.get("severity") != "warning"],
                     "warnings": [e for e in run.errors if e.get("severity") == "warning"]})
    return rows


def segments_overview() -> dict:
    """The latest segmentation's segments with their DP statistics, and its quality figures."""
    segmentation = segmentation_latest()
    if segmentation is None:
        return {"segmentation": None, "segments": []}
    statistics = segment_statistics(segmentation)
    segments = []
    for segment in Segment.objects.filter(segmentation=segmentation).order_by("index"):
        stats = statistics.get(str(segment.id)) or {}
        # personalization names the size statistic "size" (earlier "sizes").
        segments.append({"segment": segment, "size": stats.get("size") or stats.get("sizes"),
                         "total_spend": stats.get("total_spend"),
                         "average_spend": stats.get("average_spend")})
    return {"segmentation": segmentation, "segments": segments, "definition": segmentation.definition}


def predictions_overview() -> dict | None:
    """The latest prediction model and its run's DP release of the prediction distribution.

    The model's fit check (expected customers by repeat orders) is shown as shares, beside
    the released (noisy) counts turned into shares: no exact count of people reaches the page.
    """
    model = prediction_model_latest()
    if model is None:
        return None
    release = DpRelease.objects.filter(statistic="predictions", run_id=model.run_id).first()
    expected = model.fit_check.get("expected") or []
    total = sum(expected) or 1.0
    observed = dict(release.values["repeat_orders"]) if release else {}
    released_total = sum(observed.values()) or None
    labels = list(observed) or [str(i) for i in range(len(expected))]
    expected_shares = [v / total for v in expected]
    observed_shares = [v / released_total for v in observed.values()] if released_total else []
    return {
        "model": model, "release": release, "repeat_labels": labels,
        "expected_shares": expected_shares, "observed_shares": observed_shares,
        "observed_error": release.error_bound_95 / released_total if released_total else None,
        "rows": [{"label": label, "expected": expected_shares[i] if i < len(expected_shares) else None,
                  "observed": observed_shares[i] if i < len(observed_shares) else None}
                 for i, label in enumerate(labels)],
    }


def recommender_evaluation() -> dict | None:
    """The newest stored offline evaluation: each model's mean metrics, and NDCG@k per model
    and per part of the hybrid alone (the ablation) with its spread across seeds."""
    document = recommender_evaluation_latest()
    if not document or not document.get("models"):
        return None
    k = document.get("k")
    # The stored JSON's key order is the database's: put ours first and the metrics as printed.
    models = _ordered(document["models"], ("tessera", "ease", "rp3beta", "als", "popularity"))
    ablation = _ordered(document.get("ablation", {}), ("collaborative", "content", "popularity"))
    names = list(_ordered(next(iter(models.values())).get("mean", {}),
                          (f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", "coverage")))
    ndcg = f"ndcg@{k}"

    def spread(entry: dict) -> dict:
        values = [run[ndcg] for run in entry.get("per_seed", []) if ndcg in run]
        mean = entry.get("mean", {}).get(ndcg)
        deviation = (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5 if values and mean is not None \
            else None
        return {"mean": mean, "std": deviation, "low": min(values, default=None), "high": max(values, default=None)}

    return {"dataset": document.get("dataset"), "k": k, "seeds": document.get("seeds", []),
            "stored_at": document.get("stored_at"), "metric_names": names, "ndcg_name": ndcg,
            "beats_every_seed": document.get("summary", {}).get("tessera_beats_als_and_ease_on_every_seed"),
            "paired": _paired(document.get("paired"), ndcg),
            "rows": [{"name": name, "values": [m.get("mean", {}).get(n) for n in names]} for name, m in models.items()],
            "ndcg": [{"name": name, **spread(m)} for name, m in models.items()]
                    + [{"name": f"{part} alone", **spread(m)} for part, m in ablation.items()]}


def _paired(paired: dict | None, ndcg: str) -> dict | None:
    """Tessera minus the best tuned baseline, paired by seed (documents since issue 16)."""
    if not paired or ndcg not in paired:
        return None
    low, high = (paired[ndcg].get("ci95") or [None, None])[:2]
    return {"baseline": paired.get("baseline"), "mean_diff": paired[ndcg].get("mean_diff"), "low": low, "high": high}


def _ordered(mapping: dict, first: tuple) -> dict:
    return {**{key: mapping[key] for key in first if key in mapping},
            **{key: value for key, value in mapping.items() if key not in first}}


def recommendation_quality_overview(*, limit: int = 20) -> dict:
    """Quality records of the latest succeeded runs (oldest first), each with its alerts
    against the TESSERA_QUALITY_* thresholds and the run before it."""
    from personalization.services.recommendation_quality import quality_alerts

    thresholds = {"min_coverage": settings.TESSERA_QUALITY_MIN_COVERAGE, "max_gini": settings.TESSERA_QUALITY_MAX_GINI,
                  "max_miscalibration": settings.TESSERA_QUALITY_MAX_MISCALIBRATION,
                  "max_segment_gap": settings.TESSERA_QUALITY_MAX_SEGMENT_GAP,
                  "max_drift": settings.TESSERA_QUALITY_MAX_DRIFT}
    runs = list(PipelineRun.objects.filter(status=RunStatus.SUCCEEDED).exclude(quality={})
                .order_by("-finished_at", "-id").values("id", "finished_at", "quality")[:limit])[::-1]
    previous = None
    for run in runs:
        run["alerts"] = quality_alerts(run["quality"], previous, thresholds)
        previous = run["quality"]
    return {"runs": runs, "thresholds": thresholds, "latest_alerts": runs[-1]["alerts"] if runs else []}


def recommendation_overrides() -> dict:
    """Operators' blocks and pins in force (with item titles), and the latest lifted ones."""
    current = list(RecommendationOverride.objects.filter(lifted_at__isnull=True).order_by("-created_at", "-id"))
    lifted = list(RecommendationOverride.objects.filter(lifted_at__isnull=False).order_by("-lifted_at")[:20])
    titles = dict(Item.objects.filter(id__in={o.item_id for o in current + lifted}).values_list("id", "title"))
    for override in current + lifted:
        override.title = titles.get(override.item_id, "")
    return {"current": current, "lifted": lifted}


def recommender_runs(*, limit: int = 5) -> list[PipelineRun]:
    return list(PipelineRun.objects.filter(status=RunStatus.SUCCEEDED).exclude(model_version="")
                .order_by("-finished_at")[:limit])


def merge_review() -> dict:
    return {
        "open_count": MergeConflict.objects.filter(status="open").count(),
        "applicable_reasons": sorted(APPLICABLE_REASONS),
    }


def webhook_overview() -> dict:
    """Deliveries by status (the deliveries and the failed attempts are web.ops_lists'
    delivery_list and attempt_list, filtered and paged)."""
    by_status = dict(WebhookDelivery.objects.values_list("status").annotate(n=Count("id")).values_list(
        "status", "n"))
    return {"by_status": {s: by_status.get(s, 0) for s in DeliveryStatus.values}}


def ingestion_errors() -> dict:
    """Errors by code over the last 7 days and how many are on record (the list is
    web.ops_lists.ingestion_error_list, filtered and paged)."""
    since = timezone.now() - timedelta(days=7)
    codes: Counter = Counter()
    for row in IngestionError.objects.filter(received_at__gte=since).values_list("codes", flat=True):
        codes.update(row or [])
    return {"codes_7d": codes.most_common(), "total": IngestionError.objects.count()}


# --- the console's lists ----------------------------------------------------------------------------


ACCESS_LOG_READ = "access_log_read"


def access_log_page(*, search: dict, filters: dict, number: int, actor: str):
    """A page of the organisation's access log, newest first. Reading it is itself an entry
    (written first, so it shows on the page): who, which filters (codes; whether a search
    text was given, never the text) and which page."""
    operator_action_event(actor=actor, action=ACCESS_LOG_READ, detail={"filters": filters, "page": number})
    return page_of(access_log_search(**search), number)


def dsr_page(*, search: dict, number: int):
    page = page_of(dsr_search(**search), number)
    page.object_list = dsr_rows(page.object_list)
    return page
