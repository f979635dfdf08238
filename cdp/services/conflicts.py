"""Reviewing merge conflicts: the resolution refused a merge, and a person confirms it."""

from __future__ import annotations

from uuid import UUID

from django.db import transaction
from django.utils import timezone

from cdp.core.errors import ApplicationError, NotFound
from cdp.models import ConflictStatus, MergeConflict
from consent.events import operator_action_event


@transaction.atomic
def merge_conflict_approve(*, conflict_id: UUID, actor: str) -> MergeConflict:
    """The refusal was right: keep the profiles apart and close the conflict."""
    conflict = MergeConflict.objects.select_for_update().filter(id=conflict_id).first()
    if conflict is None:
        raise NotFound("No merge conflict has this id.")
    if conflict.status != ConflictStatus.OPEN:
        raise ApplicationError("This conflict was already reviewed.", code="already_resolved", status=409)
    conflict.status, conflict.resolved_at = ConflictStatus.RESOLVED, timezone.now()
    conflict.save(update_fields=["status", "resolved_at"])
    operator_action_event(actor=actor, action="merge_conflict_approved", profile_id=conflict.profile_id,
                          detail={"conflict_id": str(conflict.id), "reason": conflict.reason})
    return conflict
