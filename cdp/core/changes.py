"""The change feed: outbox rows in an order that never lets a reader skip one.

Why not order by the row id? Ids are taken when a transaction inserts, not when it
commits. With two writers, T1 takes id 5, T2 takes id 6 and commits first; a reader then
sees 6, hands out "resume after 6", and never sees 5 once T1 commits.

So rows are written without a position, and positions are stamped later by `changes_stamp`:
  * it stamps only rows it can see, and a row is visible only once its writing
    transaction has committed, so an in-flight row is left for a later stamp;
  * stampers take turns on the OutboxSequence row lock (held until their commit), and
    each continues from the last position committed before it, so every stamp commits
    with positions above all positions already visible, and any reader's snapshot sees
    positions 1..M with no gaps being filled in later.
A cursor handed out is at most the M its reader saw, so everything stamped afterwards
lies beyond it. This holds on PostgreSQL (READ COMMITTED; row locks are released after
the commit is visible) and on SQLite (one writer at a time, BEGIN IMMEDIATE).

Compared with stamping only rows below the oldest running transaction id
(pg_snapshot_xmin), stamping by visibility gives the same guarantee without waiting
behind unrelated long transactions. Order within the feed is commit order, roughly: a
change can have an older `occurred_at` than the one before it.

Reads outbox rows (ids and purposes only); logs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction

from cdp.core.errors import ApplicationError
from cdp.core.models import OutboxMessage, OutboxSequence
from cdp.core.outbox import CHANGE_TYPES

DEFAULT_LIMIT = 100
STAMP_BATCH = 5000


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"


@dataclass(frozen=True)
class ChangePage:
    results: list[dict]
    next_cursor: str
    has_more: bool


def changes_stamp(*, batch_size: int = STAMP_BATCH) -> int:
    """Give positions to committed, unstamped outbox rows (oldest id first); returns how many.

    Safe to run concurrently and from anywhere (feed reads, the webhook relay).
    """
    if not OutboxMessage.objects.filter(position__isnull=True).exists():
        return 0  # the common case costs one index probe and takes no lock
    _sequence_ensure()
    with transaction.atomic():
        sequence = OutboxSequence.objects.select_for_update().get(pk=1)
        # One statement, one snapshot: rows of transactions still running are invisible
        # to it and keep a null position until a later stamp.
        table = connection.ops.quote_name(OutboxMessage._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET position = %s + numbered.n "  # noqa: S608 (table name is ours)
                f"FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY id) AS n FROM {table} "
                f"      WHERE position IS NULL ORDER BY id LIMIT %s) AS numbered "
                f"WHERE {table}.id = numbered.id",
                [sequence.last_position, batch_size],
            )
            stamped = cursor.rowcount
        if stamped:
            sequence.last_position += stamped
            sequence.save(update_fields=["last_position"])
    return stamped


def _sequence_ensure() -> None:
    # Created on first use rather than by a data migration, so a flushed test database
    # works too; it continues after the highest position already given.
    if not OutboxSequence.objects.filter(pk=1).exists():
        top = OutboxMessage.objects.exclude(position=None).order_by("-position").values_list(
            "position", flat=True).first()
        OutboxSequence.objects.get_or_create(pk=1, defaults={"last_position": top or 0})


def changes_high_water() -> int:
    """The last position whose change (and every one before it) is visible now."""
    return OutboxSequence.objects.filter(pk=1).values_list("last_position", flat=True).first() or 0


def cursor_parse(cursor: str | None) -> int:
    if cursor in (None, ""):
        return 0
    if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 19:
        raise InvalidCursor("The cursor is not one this feed handed out.")
    return int(cursor)


def changes_list(*, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> ChangePage:
    """The changes after `cursor`, oldest first; `next_cursor` is where to resume.

    `next_cursor` is never null: with nothing new it is the cursor given (or the current
    high-water mark, past changes of types the feed does not list). `has_more` says
    whether calling again at once would return more.
    """
    after = cursor_parse(cursor)
    backlog = changes_stamp(batch_size=STAMP_BATCH) >= STAMP_BATCH
    # Read the high-water mark first: every position up to it is already visible, so the
    # page below (a later snapshot) cannot miss one of them.
    top = changes_high_water()
    if after > top:
        raise InvalidCursor("The cursor is not one this feed handed out.")
    rows = list(
        OutboxMessage.objects.filter(position__gt=after, position__lte=top, topic__in=CHANGE_TYPES)
        .order_by("position")[: limit + 1]
    )
    full = len(rows) > limit
    rows = rows[:limit]
    # A short page listed everything up to `top`: resume from there, past rows of topics
    # the feed does not list, so they are not read again.
    next_position = rows[-1].position if full else top
    return ChangePage(results=[change_as_dict(r) for r in rows], next_cursor=str(next_position),
                      has_more=full or backlog)


def change_as_dict(message: OutboxMessage) -> dict:
    payload = message.payload or {}
    return {
        "id": str(message.event_id),
        "position": message.position,
        "type": message.topic,
        "profile_id": payload.get("profile_id"),
        "occurred_at": iso_timestamp(message.created_at),
        "data": payload,
    }


def iso_timestamp(value) -> str:
    """ISO 8601 with the UTC offset, as the rest of the API writes times."""
    return value.isoformat()
