"""Audit writers: the access log (reads of decrypted personal data) and operator actions.

One small function per kind of entry (Saleor's `events.py`). Entries hold ids, field
names, codes and counts, never values. The log is append-only (see consent.models).
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.utils import timezone

from consent.models import AccessKind, AccessLog

MAX_ACTOR = 120


def _actor(actor: str) -> str:
    return (actor or "unknown")[:MAX_ACTOR]


def personal_data_read_event(*, actor: str, profile_ids: Iterable, fields: Iterable[str], purpose: str,
                             detail: dict | None = None) -> int:
    """One entry per person whose decrypted data was read; returns how many were written."""
    now = timezone.now()
    field_list = sorted(set(fields))
    rows = [AccessLog(at=now, kind=AccessKind.READ, actor=_actor(actor), profile_id=UUID(str(pid)),
                      fields=field_list, purpose=purpose[:64], detail=detail or {})
            for pid in sorted({str(p) for p in profile_ids})]
    if len(rows) == 1:
        rows[0].save()  # one INSERT: no transaction of its own around it (every API read)
    else:
        AccessLog.objects.bulk_create(rows, batch_size=1000)
    return len(rows)


def operator_action_event(*, actor: str, action: str, profile_id=None, detail: dict | None = None) -> AccessLog:
    """Key creation, purpose and notice changes, merges, DSR decisions, purges..."""
    return AccessLog.objects.create(at=timezone.now(), kind=AccessKind.OPERATOR_ACTION, actor=_actor(actor),
                                    profile_id=UUID(str(profile_id)) if profile_id else None,
                                    purpose=action[:64], detail=detail or {})


# Staff changes to consent configuration: legal bases, notices, retention and DSR approval
# rules. These rows hold no personal data, so the entry keeps what the setting was and what
# it became; the compliance console lists them (consent.selectors.configuration_changes).
PURPOSE_BASIS_SET = "purpose_basis_set"
NOTICE_PUBLISHED = "notice_published"
RETENTION_RULE_SET = "retention_rule_set"
DSR_APPROVAL_RULE_SET = "dsr_approval_rule_set"
CONFIGURATION_ACTIONS = (PURPOSE_BASIS_SET, NOTICE_PUBLISHED, RETENTION_RULE_SET, DSR_APPROVAL_RULE_SET)


def configuration_changed_event(*, actor: str, action: str, before: dict | None, after: dict) -> AccessLog:
    """`before` is None where no row existed (the built-in default applied)."""
    if action not in CONFIGURATION_ACTIONS:
        raise ValueError(f"Not a configuration change: {action!r}.")
    return operator_action_event(actor=actor, action=action, detail={"before": before, "after": after})
