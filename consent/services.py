"""Changing consent state.

Reads and writes only ConsentState (pseudonymous ids, purposes, booleans); logs nothing
personal. The tamper-evident ledger is appended here too once it exists.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from consent import registry
from consent.models import ConsentState
from consent.purposes import PURPOSES


@transaction.atomic
def consent_set(*, profile_id: UUID, purpose: str, granted: bool, occurred_at: datetime | None = None) -> bool:
    """Record a decision; returns False when it changes nothing."""
    if purpose not in PURPOSES:
        raise ValueError(f"Unknown purpose {purpose!r}.")
    occurred_at = occurred_at or timezone.now()
    state = ConsentState.objects.select_for_update().filter(profile_id=profile_id, purpose=purpose).first()
    if state is not None and state.granted == granted:
        return False
    ConsentState.objects.update_or_create(
        profile_id=profile_id, purpose=purpose, defaults={"granted": granted, "updated_at": occurred_at}
    )
    registry.run(registry.GRANT if granted else registry.WITHDRAWAL, profile_id=profile_id, purpose=purpose)
    return True


@transaction.atomic
def consent_profiles_merged(*, survivor_id: UUID, absorbed_id: UUID) -> None:
    """Merged consents: the most restrictive state wins (a withdrawal beats a grant)."""
    states = {
        (s.profile_id, s.purpose): s
        for s in ConsentState.objects.select_for_update().filter(profile_id__in=[survivor_id, absorbed_id])
    }
    now = timezone.now()
    for purpose in PURPOSES:
        mine, theirs = states.get((survivor_id, purpose)), states.get((absorbed_id, purpose))
        if theirs is None:
            continue
        merged_granted = theirs.granted if mine is None else (mine.granted and theirs.granted)
        if mine is None or mine.granted != merged_granted:
            consent_set(profile_id=survivor_id, purpose=purpose, granted=merged_granted, occurred_at=now)
