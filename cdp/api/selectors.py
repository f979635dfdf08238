"""Reads the API needs on top of cdp.selectors. The profile views they return hold
decrypted personal data; callers record the access (cdp.api.access)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.db.models import QuerySet

from cdp.api.errors import InvalidInput
from cdp.core.errors import ApplicationError
from cdp.models import ConflictStatus, Merge, MergeConflict
from cdp.selectors import profile_ids_by_identifier, profile_unified_view
from cdp.services.records import parse_identifiers

CONFLICT_FILTERS = (*ConflictStatus.values, "all")


def profiles_lookup(*, kind: str, value, source_key: str | None, region: str | None,
                    visible: Callable[[Iterable], set] | None) -> list[dict]:
    """Unified views of the active profiles holding this identifier (at most one) that
    `visible` (the caller's key boundary; None: everyone) keeps; the others are never decrypted.
    A malformed identifier raises InvalidInput naming it (a junk one matches nobody)."""
    _, errors = parse_identifiers({kind: value}, source_key=source_key or "", region=region, field_prefix="")
    if errors:
        raise InvalidInput(f"The {kind} is not valid.", errors=[{**e, "field": kind} for e in errors])
    ids = profile_ids_by_identifier(kind=kind, value=value, source_key=source_key, region=region)
    shown = set(ids) if visible is None or not ids else visible(ids)
    return [profile_unified_view(profile_id=pid) for pid in ids if pid in shown]


def merge_conflict_list(*, status: str) -> QuerySet:
    if status not in CONFLICT_FILTERS:
        raise ApplicationError("status must be open, resolved or all.", code="invalid_status")
    conflicts = MergeConflict.objects.all()
    return conflicts if status == "all" else conflicts.filter(status=status)


def merge_profile_ids(*, merge_id) -> list:
    """The survivor and the absorbed profile of a merge (empty for an unknown merge)."""
    pair = Merge.objects.filter(pk=merge_id).values_list("survivor_id", "absorbed_id").first()
    return list(pair) if pair else []


def conflict_profile_ids(conflict: MergeConflict) -> set:
    """Every profile a refused merge names."""
    return {str(conflict.profile_id), *(str(pid) for pid in conflict.other_profiles or [])}
