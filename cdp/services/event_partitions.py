"""Events by month on PostgreSQL: partitions made ahead, and retention by whole partitions.

The events table is partitioned by `received_at` (migration
0011_events_partitioned_by_month): inserts go to this month's partition, and a month
past its retention is dropped at once instead of deleted row by row. SQLite keeps one
table; everything here is a no-op there.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils import timezone

from cdp.core.partitions import partition_drop, partitions, partitions_ensure
from cdp.models import Event, Source

TABLE = Event._meta.db_table
COLUMN = "received_at"


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def event_partitions_ensure(*, now=None, months_ahead: int | None = None) -> list[str]:
    """This month's partition and the next months' (TESSERA_EVENT_PARTITIONS_AHEAD)."""
    if not partitioned():
        return []
    ahead = settings.TESSERA_EVENT_PARTITIONS_AHEAD if months_ahead is None else months_ahead
    return partitions_ensure(TABLE, COLUMN, now=now or timezone.now(), months_ahead=ahead)


def event_partitions_droppable(*, older_than, source: str | None,
                               exclude_sources: list[str]) -> list[tuple[str, datetime, datetime]]:
    """The months received wholly before `older_than` that retention may drop whole.

    Only for the rule that covers every source (`source` None): a month still holding an
    event of a source with a rule of its own (`exclude_sources`) stays, and its rows past
    their date are deleted one by one, as before.
    """
    if not partitioned() or source is not None:
        return []
    kept_ids = list(Source.objects.filter(key__in=exclude_sources).values_list("id", flat=True))
    return [(name, start, end) for name, start, end in partitions(TABLE)
            if end <= older_than and not (kept_ids and _holds_any_source(name, kept_ids))]


def received_before_outside(older_than, droppable: list[tuple[str, datetime, datetime]]) -> Q:
    """Events received before `older_than` and outside the months to be dropped: what
    retention deletes row by row (PostgreSQL reads only the partitions these ranges touch)."""
    ranges, lower = Q(), None
    for _, start, end in droppable:
        if lower is None:
            ranges |= Q(received_at__lt=start)
        elif lower < start:
            ranges |= Q(received_at__gte=lower, received_at__lt=start)
        lower = end
    if lower is None:
        return Q(received_at__lt=older_than)
    if lower < older_than:
        ranges |= Q(received_at__gte=lower, received_at__lt=older_than)
    return ranges


def event_partitions_drop(droppable: list[tuple[str, datetime, datetime]]) -> int:
    """Drop the months (last in the purge's transaction: the table's lock is held only
    until its commit); returns the events they held."""
    return sum(partition_drop(TABLE, name) for name, _, _ in droppable)


def _holds_any_source(name: str, source_ids: list) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {connection.ops.quote_name(name)} "  # noqa: S608
                       "WHERE source_id = ANY(%s))", [source_ids])
        return cursor.fetchone()[0]
