"""The dashboard's lists you search: pipeline runs, ingestion errors, webhook deliveries and
failed attempts, merges and refused merges, campaigns. Read-only queries (these apps have no
public list reader yet), filtered by what the operator chose (web.filters) and paged; ids,
codes and statuses only."""

from __future__ import annotations

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from campaigns.models import Campaign
from cdp.models import Merge, MergeConflict, Source
from cdp.segment.models import IngestionError
from cdp.webhooks.models import AttemptOutcome, DeliveryStatus, WebhookAttempt, WebhookDelivery
from personalization.models import PipelineRun, RunStatus


def _within(rows: QuerySet, field: str, since, until) -> QuerySet:
    bounds = {f"{field}__gte": since, f"{field}__lt": until}
    return rows.filter(**{k: v for k, v in bounds.items() if v is not None})


def _matching(rows: QuerySet, **conditions) -> QuerySet:
    """Only the conditions the operator chose (an empty choice filters nothing)."""
    return rows.filter(**{k: v for k, v in conditions.items() if v})


def ingestion_error_list(*, source: str = "", code: str = "", since=None, until=None) -> QuerySet:
    rows = IngestionError.objects.select_related("source").order_by("-received_at", "-id")
    if source:
        rows = rows.filter(source__key=source)
    if code and connection.features.supports_json_field_contains:
        rows = rows.filter(codes__contains=[code])
    elif code:  # SQLite (development and tests): match the JSON text of the list
        rows = rows.filter(codes__icontains=f'"{code}"')
    return _within(rows, "received_at", since, until)


def ingestion_codes() -> list[str]:
    return sorted({c for codes in IngestionError.objects.values_list("codes", flat=True)[:5000] for c in codes or []})


def source_keys() -> list[tuple[str, str]]:
    return list(Source.objects.order_by("key").values_list("key", "name"))


def delivery_list(*, status: str = "", endpoint: str = "", since=None, until=None) -> QuerySet:
    rows = WebhookDelivery.objects.select_related("subscription", "message").order_by("-created_at", "-id")
    if status == "failing":
        rows = rows.filter(Q(status=DeliveryStatus.FAILED) | Q(status=DeliveryStatus.PENDING, attempts__gt=0))
    elif status:
        rows = rows.filter(status=status)
    return _within(_matching(rows, subscription__url__icontains=endpoint), "created_at", since, until)


def attempt_list(*, outcome: str = "", endpoint: str = "", since=None, until=None) -> QuerySet:
    """Webhook attempts that did not succeed, newest first."""
    rows = (WebhookAttempt.objects.exclude(outcome=AttemptOutcome.SUCCEEDED)
            .select_related("delivery__subscription").order_by("-started_at", "-id"))
    rows = _matching(rows, outcome=outcome, delivery__subscription__url__icontains=endpoint)
    return _within(rows, "started_at", since, until)


def pipeline_run_list(*, status: str = "", trigger: str = "", since=None, until=None) -> QuerySet:
    rows = _matching(PipelineRun.objects.order_by("-created_at", "-id"), status=status, trigger=trigger)
    return _within(rows, "created_at", since, until)


def pipeline_triggers() -> list[str]:
    return sorted(set(PipelineRun.objects.values_list("trigger", flat=True).distinct()))


def run_statuses() -> list[tuple[str, str]]:
    return list(RunStatus.choices)


def merge_lists(*, reason: str = "", since=None, until=None) -> dict[str, QuerySet]:
    conflicts = MergeConflict.objects.filter(status="open").order_by("created_at", "id")
    merges = Merge.objects.filter(undone_at__isnull=True).order_by("-created_at", "-id")
    if reason:
        conflicts, merges = conflicts.filter(reason=reason), merges.filter(reason=reason)
    return {"conflicts": _within(conflicts, "created_at", since, until),
            "merges": _within(merges, "created_at", since, until)}


def merge_reasons() -> list[str]:
    return sorted(set(Merge.objects.values_list("reason", flat=True).distinct())
                  | set(MergeConflict.objects.values_list("reason", flat=True).distinct()))


def campaign_list(*, status: str = "", search: str = "", since=None, until=None) -> QuerySet:
    """By status as campaign_as_dict names it (stopped, ended, scheduled, running)."""
    now = timezone.now()
    live = Q(stopped_at__isnull=True) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))
    statuses = {"stopped": Q(stopped_at__isnull=False), "ended": Q(stopped_at__isnull=True, ends_at__lte=now),
                "scheduled": live & Q(starts_at__gt=now), "running": live & Q(starts_at__lte=now)}
    rows = Campaign.objects.order_by("-created_at", "-id")
    if status in statuses:
        rows = rows.filter(statuses[status])
    if search:
        rows = rows.filter(Q(key__icontains=search) | Q(name__icontains=search))
    return _within(rows, "created_at", since, until)
