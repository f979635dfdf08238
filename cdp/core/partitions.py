"""Monthly range partitions of a PostgreSQL table partitioned by a timestamp column.

A partitioned table here has a DEFAULT partition (`<table>_default`: an insert never
fails for want of a partition) and one partition per month named `<table>_pYYYYMM`,
holding [first instant of the month, first instant of the next) in UTC. Partitions are
made ahead of time (a beat task); a month whose rows already sit in the default
partition is split out of it when its partition is made.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db import connection, transaction

_NAME = re.compile(r"_p(\d{4})(\d{2})$")


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def month_after(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, start: datetime) -> str:
    return f"{table}_p{start.year:04d}{start.month:02d}"


def partitions(table: str) -> list[tuple[str, datetime, datetime]]:
    """(name, start, end) of the table's monthly partitions, oldest first."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [table])
        names = [name for (name,) in cursor.fetchall()]
    months = []
    for name in names:
        match = _NAME.search(name)
        if match and name == f"{table}{match[0]}":
            start = datetime(int(match[1]), int(match[2]), 1, tzinfo=UTC)
            months.append((name, start, month_after(start)))
    return sorted(months, key=lambda month: month[1])


@transaction.atomic
def partition_create(table: str, column: str, start: datetime) -> bool:
    """Make the partition of the month starting at `start`, moving in any rows of that
    month from the default partition; False when it exists already."""
    name, end = partition_name(table, start), month_after(start)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"partitions:{table}"])  # one maker at a time
        if any(existing == name for existing, _, _ in partitions(table)):
            return False
        cursor.execute(f"CREATE TABLE {quote(name)} (LIKE {quote(table)} INCLUDING DEFAULTS)")
        cursor.execute(
            f"WITH moved AS (DELETE FROM {quote(table + '_default')} WHERE {quote(column)} >= %s "  # noqa: S608
            f"AND {quote(column)} < %s RETURNING *) INSERT INTO {quote(name)} SELECT * FROM moved", [start, end])
        # Attaching builds the partition's indexes from the parent's.
        # DDL takes no parameters; the bounds are datetimes made here, not input.
        cursor.execute(f"ALTER TABLE {quote(table)} ATTACH PARTITION {quote(name)} "
                       f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    return True


def partitions_ensure(table: str, column: str, *, now: datetime, months_ahead: int) -> list[str]:
    """Partitions from this month to `months_ahead` months on; returns those made."""
    existing = {name for name, _, _ in partitions(table)}
    made, start = [], month_start(now)
    for _ in range(months_ahead + 1):
        if partition_name(table, start) not in existing and partition_create(table, column, start):
            made.append(partition_name(table, start))
        start = month_after(start)
    return made


def partition_drop(table: str, name: str) -> int:
    """Drop one partition (inside the caller's transaction); returns the rows it held."""
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {quote(name)}")  # noqa: S608
        rows = cursor.fetchone()[0]
        cursor.execute(f"ALTER TABLE {quote(table)} DETACH PARTITION {quote(name)}")
        cursor.execute(f"DROP TABLE {quote(name)}")
    return rows
