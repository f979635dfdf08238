"""Operator oversight of recommendations: block an item, or pin one first for a segment.

A block keeps the item out of every list; a pin puts the item first in the lists of the
named segment's customers (by segment name, stable across runs: personalization.segmentation
ARCHETYPES), or of everyone when no segment is named. Each needs a reason, and creating or
lifting one is written to the audit trail (consent's operator-action log) in the same
transaction. Both are enforced where lists are made (`score_rows`, shared by the pipeline and
the real-time refresh) from the next list computed; a pinned item's explanation says it was
chosen by the team, and a person never gets back an item they already bought or rated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from cdp.models import Item
from consent.services.access import operator_action_event
from personalization.errors import InvalidOverride
from personalization.models import OverrideKind, RecommendationOverride

MAX_PINS_PER_LIST = 3


@dataclass(frozen=True)
class Overrides:
    """What is in force: blocked item ids, and pinned item ids per segment name ("" = everyone)."""

    blocked: frozenset[str] = frozenset()
    pins: dict[str, list[str]] = field(default_factory=dict)

    def pins_for(self, segment_name: str | None) -> list[tuple[str, bool]]:
        """(item id, pinned for this segment rather than for everyone) for a person of this
        segment: the segment's pins first, then everyone's; blocked items never."""
        chosen = [(item, True) for item in (self.pins.get(segment_name, []) if segment_name else [])]
        chosen += [(item, False) for item in self.pins.get("", [])]
        result: dict[str, bool] = {}
        for item, for_segment in chosen:
            if item not in self.blocked:
                result.setdefault(item, for_segment)
        return list(result.items())[:MAX_PINS_PER_LIST]


def segment_names() -> list[str]:
    """The names a segment can have (imported here: segmentation pulls in scikit-learn)."""
    from personalization.segmentation import ARCHETYPES

    return list(ARCHETYPES)


def overrides_in_force() -> Overrides:
    blocked, pins = set(), {}
    for kind, item_id, segment in (RecommendationOverride.objects.filter(lifted_at__isnull=True)
                                   .order_by("created_at", "id").values_list("kind", "item_id", "segment_name")):
        if kind == OverrideKind.BLOCK:
            blocked.add(item_id)
        else:
            pins.setdefault(segment, []).append(item_id)
    return Overrides(blocked=frozenset(blocked), pins=pins)


@transaction.atomic
def recommendation_override_create(*, kind: str, item_id: str, reason: str, actor: str,
                                   segment_name: str = "") -> RecommendationOverride:
    reason, item_id, segment_name = reason.strip(), item_id.strip(), segment_name.strip()
    if kind not in OverrideKind.values:
        raise InvalidOverride("Choose to block or to pin the item.")
    if not reason:
        raise InvalidOverride("Give a reason: it is kept in the audit trail.")
    if not Item.objects.filter(id=item_id).exists():
        raise InvalidOverride("No catalogue item has this id.")
    if kind == OverrideKind.BLOCK:
        segment_name = ""  # a block applies to everyone
    elif segment_name and segment_name not in segment_names():
        raise InvalidOverride("No segment has this name.")
    override = RecommendationOverride.objects.create(kind=kind, item_id=item_id, segment_name=segment_name,
                                                     reason=reason[:500], created_by=actor[:150])
    operator_action_event(actor=actor, action=f"recommendation.{kind}", detail={
        "override_id": override.id, "item_id": item_id, "segment": segment_name or None, "reason": reason[:500]})
    return override


@transaction.atomic
def recommendation_override_lift(*, override_id: int, actor: str) -> RecommendationOverride:
    override = RecommendationOverride.objects.select_for_update().filter(id=override_id,
                                                                         lifted_at__isnull=True).first()
    if override is None:
        raise InvalidOverride("This block or pin is not in force.")
    override.lifted_at, override.lifted_by = timezone.now(), actor[:150]
    override.save(update_fields=["lifted_at", "lifted_by"])
    operator_action_event(actor=actor, action=f"recommendation.{override.kind}_lifted", detail={
        "override_id": override.id, "item_id": override.item_id, "segment": override.segment_name or None})
    return override
