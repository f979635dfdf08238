"""Reads the API needs on top of cdp.selectors. The profile views they return hold
decrypted personal data; callers record the access (cdp.api.access)."""

from __future__ import annotations

from django.db.models import QuerySet

from cdp.core.errors import ApplicationError
from cdp.models import ConflictStatus, MergeConflict
from cdp.selectors import profile_ids_by_identifier, profile_unified_view

CONFLICT_FILTERS = (*ConflictStatus.values, "all")


def profiles_lookup(*, kind: str, value, source_key: str | None) -> list[dict]:
    """Unified views of the active profiles holding this identifier (at most one)."""
    return [profile_unified_view(profile_id=pid)
            for pid in profile_ids_by_identifier(kind=kind, value=value, source_key=source_key)]


def merge_conflict_list(*, status: str) -> QuerySet:
    if status not in CONFLICT_FILTERS:
        raise ApplicationError("status must be open, resolved or all.", code="invalid_status")
    conflicts = MergeConflict.objects.all()
    return conflicts if status == "all" else conflicts.filter(status=status)
