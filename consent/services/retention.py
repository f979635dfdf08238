"""Retention: how long each kind of data is kept, per source, and the periodic purge.

Consent owns the rules and the purge run; the data is deleted by the RETENTION handlers
of the apps that own it (events, held third-party records, ingestion errors, idempotency
records), and by consent itself for its served-notice log and sealed DSR results. Every
run is logged in the access log as an operator action with its counts. The consent
ledger, the access log and DSR audit trails are never purged: they are the proof.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from consent import registry
from consent.errors import ConsentError, ConsentErrorCode
from consent.events import RETENTION_RULE_SET, configuration_changed_event, operator_action_event
from consent.models import RetentionKind, RetentionRule, ServedNotice
from consent.services.dsr import dsr_results_purge

DEFAULT_DAYS = {
    RetentionKind.EVENTS: 730,
    RetentionKind.HELD_RECORDS: 90,
    RetentionKind.IDEMPOTENCY: 1,
    RetentionKind.INGESTION_ERRORS: 30,
    RetentionKind.SERVED_NOTICES: 1095,
    RetentionKind.DSR_RESULTS: 30,
}
PER_SOURCE_KINDS = {RetentionKind.EVENTS, RetentionKind.HELD_RECORDS, RetentionKind.INGESTION_ERRORS}


@transaction.atomic
def retention_rule_set(*, kind: str, days: int, source: str = "", actor: str) -> RetentionRule:
    if kind not in RetentionKind.values:
        raise ConsentError("Unknown retention kind.", code=ConsentErrorCode.RETENTION_KIND_UNKNOWN)
    if source and kind not in PER_SOURCE_KINDS:
        raise ConsentError("This kind of data is not kept per source.", code="retention_not_per_source")
    if int(days) < 1:
        raise ConsentError("Retention is at least one day.", code="retention_days_invalid")
    before = retention_rule_as_dict(
        RetentionRule.objects.select_for_update().filter(kind=kind, source=source or "").first())
    rule, _ = RetentionRule.objects.update_or_create(kind=kind, source=source or "", defaults={"days": int(days)})
    configuration_changed_event(actor=actor, action=RETENTION_RULE_SET, before=before,
                                after=retention_rule_as_dict(rule))
    return rule


def retention_rule_as_dict(rule: RetentionRule | None) -> dict | None:
    return None if rule is None else {"kind": rule.kind, "source": rule.source or None, "days": rule.days}


def retention_rules() -> dict[str, dict[str, int]]:
    """kind → {source key or "" for every source → days}; defaults filled in."""
    rules = {kind: {"": days} for kind, days in DEFAULT_DAYS.items()}
    for kind, source, days in RetentionRule.objects.values_list("kind", "source", "days"):
        rules.setdefault(kind, {})[source] = days
    return rules


def retention_purge(*, now=None, actor: str = "system") -> dict[str, int]:
    """Purge everything kept past its period; one transaction per kind and source."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for kind, by_source in retention_rules().items():
        own_rules = sorted(s for s in by_source if s)
        for source, days in sorted(by_source.items()):
            older_than = now - timedelta(days=days)
            with transaction.atomic():
                purged = _purge(kind, source or None, older_than, [] if source else own_rules)
            counts[kind] = counts.get(kind, 0) + purged
    with transaction.atomic():
        operator_action_event(actor=actor, action="retention_purge", detail={"purged": counts})
    return counts


def _purge(kind: str, source: str | None, older_than, exclude_sources: list[str]) -> int:
    if kind == RetentionKind.SERVED_NOTICES:
        return ServedNotice.objects.filter(served_at__lt=older_than).delete()[0]
    if kind == RetentionKind.DSR_RESULTS:
        return dsr_results_purge(older_than=older_than)
    total = 0
    for result in registry.run(registry.RETENTION, kind=kind, source=source, older_than=older_than,
                               exclude_sources=exclude_sources):
        total += result or 0
    return total
