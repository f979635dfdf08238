"""The one question every other app asks before using personal data.

`allowed(profile_ids, purpose)` → the subset allowed; `is_allowed(profile_id, purpose)`.
No record means no consent: every purpose is consent-based out of the box.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from consent.models import ConsentState
from consent.purposes import PURPOSES

_CHUNK = 5000  # keeps IN lists within SQLite's and PostgreSQL's comfortable limits


def allowed(profile_ids: Iterable[UUID], purpose: str) -> set[UUID]:
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown purpose {purpose!r}.")
    ids = [UUID(str(pid)) for pid in profile_ids]
    result: set[UUID] = set()
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start:start + _CHUNK]
        result.update(
            ConsentState.objects.filter(profile_id__in=chunk, purpose=purpose, granted=True)
            .values_list("profile_id", flat=True)
        )
    return result


def is_allowed(profile_id: UUID, purpose: str) -> bool:
    return bool(allowed([profile_id], purpose))
