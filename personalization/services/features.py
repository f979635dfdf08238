"""RFM and behavioural features of analytics-allowed profiles, aggregated in the database.

Reads the events of the profiles in one id range that allow `analytics` (asked of
consent.policy when the chunk runs, and again under the write lock), aggregates them
with one GROUP BY query, and writes one ProfileFeatures row per profile with at least one
event. Writes nothing for anyone else; logs counts only.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Avg, Count, DecimalField, ExpressionWrapper, Max, Min, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from cdp.models import Event, EventType
from consent import policy
from personalization.db import rows_write
from personalization.locks import derived_data_write_lock
from personalization.models import ProfileFeatures, Stage
from personalization.services.pipeline import (
    pipeline_chunk_claim_write,
    pipeline_chunk_finish,
    pipeline_chunk_start,
)

PURPOSE = "analytics"
DAY = 86_400.0
_PURCHASE = Q(type=EventType.PURCHASE)
_SPEND = ExpressionWrapper(
    Coalesce("quantity", Value(1)) * Coalesce("price", Value(Decimal("0"))),
    output_field=DecimalField(max_digits=14, decimal_places=2),
)


def features_compute(*, run_id: int, chunk_index: int) -> int:
    """Features for one profile-id range of the run; returns the number of profiles featured."""
    chunk = pipeline_chunk_start(run_id=run_id, stage=Stage.FEATURES, index=chunk_index)
    if chunk is None:
        return 0
    ids = chunk.profile_ids()
    allowed = policy.allowed(ids, PURPOSE)
    as_of = datetime.fromisoformat(chunk.params["as_of"])
    rows = features_rows(run_id=run_id, profile_ids=sorted(allowed), as_of=as_of)
    with transaction.atomic():
        if not pipeline_chunk_claim_write(chunk):
            return 0
        derived_data_write_lock()
        # Consent again, under the lock: a withdrawal since the aggregation is honoured.
        still = policy.allowed([row[1] for row in rows], PURPOSE)
        rows = [row for row in rows if row[1] in still]
        rows_write(ProfileFeatures, FIELDS, rows)
        pipeline_chunk_finish(chunk, count=len(rows), skipped=len(ids) - len(allowed))
    return len(rows)


def features_rows(*, run_id: int, profile_ids: list, as_of: datetime) -> list[tuple]:
    """ProfileFeatures rows (values in FIELDS order) of these people as of `as_of`: the
    pipeline's chunks and the real-time refresh (services/realtime.py) both write these."""
    return [_features(run_id, row, as_of) for row in features_aggregate(profile_ids=profile_ids)]


def features_aggregate(*, profile_ids: list) -> list[dict]:
    """One row of aggregates per profile with events: a single GROUP BY in the database."""
    if not profile_ids:
        return []
    return list(
        Event.objects.filter(profile_id__in_array=profile_ids)
        .values("profile_id")
        .annotate(
            first_at=Min("occurred_at"),
            last_at=Max("occurred_at"),
            last_purchase_at=Max("occurred_at", filter=_PURCHASE),
            first_purchase_at=Min("occurred_at", filter=_PURCHASE),
            # Lines of one order share its time: distinct purchase times count orders.
            orders=Count("occurred_at", filter=_PURCHASE, distinct=True),
            purchases=Count("id", filter=_PURCHASE),
            monetary=Sum(_SPEND, filter=_PURCHASE),
            views=Count("id", filter=Q(type=EventType.VIEW)),
            carts=Count("id", filter=Q(type=EventType.ADD_TO_CART)),
            ratings=Count("id", filter=Q(type=EventType.RATING)),
            average_rating=Avg("rating", filter=Q(type=EventType.RATING)),
            distinct_items=Count("item_id", distinct=True),
            active_days=Count(TruncDate("occurred_at"), distinct=True),
        )
        .order_by("profile_id")
    )


FIELDS = ("run_id", "profile_id", "recency_days", "frequency", "monetary", "tenure_days", "purchases", "views",
          "carts", "ratings", "average_rating", "distinct_items", "active_days", "last_event_at",
          "first_purchase_days")


def _features(run_id: int, row: dict, as_of: datetime) -> tuple:
    """One ProfileFeatures row, as values in FIELDS order."""
    last_purchase = row["last_purchase_at"]
    # Never bought: recency counts from arrival, so long-time non-buyers look lapsed.
    recency_from = last_purchase or row["first_at"]
    return (
        run_id, row["profile_id"], max(0.0, (as_of - recency_from).total_seconds() / DAY), row["orders"],
        (row["monetary"] or Decimal("0")).quantize(Decimal("0.01")),
        max(0.0, (as_of - row["first_at"]).total_seconds() / DAY), row["purchases"], row["views"], row["carts"],
        row["ratings"], row["average_rating"], row["distinct_items"], row["active_days"], row["last_at"],
        max(0.0, (as_of - row["first_purchase_at"]).total_seconds() / DAY) if row["first_purchase_at"] else None,
    )
