"""Reads the API needs on top of cdp.selectors. The profile views they return hold
decrypted personal data; each is recorded in the access log here, as it is read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from django.db.models import QuerySet

from cdp.core.errors import ApplicationError
from cdp.core.http.errors import InvalidInput
from cdp.core.http.pagination import Page, paginate
from cdp.errors import CdpErrorCode
from cdp.models import ConflictStatus, Merge, MergeConflict
from cdp.selectors import profile_fields, profile_ids_by_identifier, profile_unified_view
from cdp.services.records import parse_identifiers
from consent.services.access import Accessor, personal_data_read

CONFLICT_FILTERS = (*ConflictStatus.values, "all")


def profiles_lookup(*, kind: str, value, source_key: str | None, region: str | None, accessor: Accessor,
                    visible: Callable[[Iterable], set] | None) -> list[dict]:
    """Unified views of the active profiles holding this identifier (at most one) that
    `visible` (the caller's key boundary; None: everyone) keeps; the others are never
    decrypted. Each view handed out is logged (field names only). A malformed identifier
    raises InvalidInput naming it (a junk one matches nobody)."""
    _, errors = parse_identifiers({kind: value}, source_key=source_key or "", region=region, field_prefix="")
    if errors:
        raise InvalidInput(f"The {kind} is not valid.", errors=[{**e, "field": kind} for e in errors])
    ids = profile_ids_by_identifier(kind=kind, value=value, source_key=source_key, region=region)
    shown = set(ids) if visible is None or not ids else visible(ids)
    views = [profile_unified_view(profile_id=pid) for pid in ids if pid in shown]
    for view in views:
        personal_data_read(accessor=accessor, profile_ids=[view["id"]], fields=profile_fields(view),
                           purpose="api_profile_lookup")
    return views


def merge_conflict_list(*, status: str) -> QuerySet:
    if status not in CONFLICT_FILTERS:
        raise ApplicationError("status must be open, resolved or all.", code=CdpErrorCode.INVALID_STATUS)
    conflicts = MergeConflict.objects.all()
    return conflicts if status == "all" else conflicts.filter(status=status)


def merge_conflicts_page(*, status: str, query_params: Mapping,
                         visible: Callable[[Iterable], set] | None) -> Page:
    """A page of refused merges, oldest first; `visible` (a key's boundary; None: everyone)
    keeps only those all of whose profiles it may see."""

    def kept(batch: list) -> list:
        named = {c.id: conflict_profile_ids(c) for c in batch}
        seen = {str(pid) for pid in visible({pid for ids in named.values() for pid in ids})}
        return [c for c in batch if named[c.id] <= seen]

    return paginate(merge_conflict_list(status=status), query_params=query_params, keep=kept if visible else None)


def merge_profile_ids(*, merge_id) -> list:
    """The survivor and the absorbed profile of a merge (empty for an unknown merge)."""
    pair = Merge.objects.filter(pk=merge_id).values_list("survivor_id", "absorbed_id").first()
    return list(pair) if pair else []


def conflict_profile_ids(conflict: MergeConflict) -> set:
    """Every profile a refused merge names."""
    return {str(conflict.profile_id), *(str(pid) for pid in conflict.other_profiles or [])}
