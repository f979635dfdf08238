"""Events partitioned by month of `received_at` on PostgreSQL (SQLite: unchanged).

Retention then drops a month at once instead of deleting its rows one by one, and
inserts touch only this month's partition and indexes (cdp.services.event_partitions).

What a partitioned table cannot have, and what replaces it:
  * a primary key without the partition key: it is (id, received_at) in the database;
    the model keeps `id` as its key (uuid4, never reused; nothing references events).
  * a unique index without the partition key: `event_message_unique` becomes a plain
    index for the duplicate check, and writers of one source's message ids take turns
    on an advisory lock (cdp.services.events.events_store) instead.
Existing events are copied into the new table (once; time it on a large table) into
monthly partitions from the oldest month to three months ahead, with a DEFAULT partition
so no insert ever fails for want of one. The SQL is written out here on purpose: a
migration must do the same thing whenever it runs.
"""

from datetime import UTC, datetime

from django.db import migrations

MONTHS_AHEAD = 3


def _month_after(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def _execute(cursor, statements) -> None:
    for statement in statements:
        cursor.execute(statement)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        _execute(cursor, (
            "ALTER TABLE cdp_event RENAME TO cdp_event_unpartitioned",
            "ALTER TABLE cdp_event_unpartitioned RENAME CONSTRAINT cdp_event_pkey TO cdp_event_unpartitioned_pkey",
            "ALTER INDEX event_profile_time_idx RENAME TO event_unpartitioned_profile_time_idx",
            "ALTER INDEX event_message_unique RENAME TO event_unpartitioned_message_unique",
            "CREATE TABLE cdp_event (LIKE cdp_event_unpartitioned INCLUDING DEFAULTS) PARTITION BY RANGE (received_at)",
            "ALTER TABLE cdp_event ADD CONSTRAINT cdp_event_pkey PRIMARY KEY (id, received_at)",
            "CREATE INDEX event_profile_time_idx ON cdp_event (profile_id, occurred_at)",
            "CREATE INDEX event_message_unique ON cdp_event (source_id, message_id) WHERE message_id IS NOT NULL",
            "CREATE TABLE cdp_event_default PARTITION OF cdp_event DEFAULT",
        ))
        cursor.execute("SELECT min(received_at), now() FROM cdp_event_unpartitioned")
        oldest, now = cursor.fetchone()
        start = datetime((oldest or now).year, (oldest or now).month, 1, tzinfo=UTC)
        end = datetime(now.year, now.month, 1, tzinfo=UTC)
        for _ in range(MONTHS_AHEAD + 1):
            end = _month_after(end)
        while start < end:
            name = f"cdp_event_p{start.year:04d}{start.month:02d}"
            # DDL takes no parameters; the bounds are dates made here.
            cursor.execute(f"CREATE TABLE {name} PARTITION OF cdp_event "
                           f"FOR VALUES FROM ('{start.isoformat()}') TO ('{_month_after(start).isoformat()}')")
            start = _month_after(start)
        cursor.execute("INSERT INTO cdp_event SELECT * FROM cdp_event_unpartitioned")
        cursor.execute("DROP TABLE cdp_event_unpartitioned")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        _execute(cursor, (
            "CREATE TABLE cdp_event_unpartitioned (LIKE cdp_event INCLUDING DEFAULTS)",
            "INSERT INTO cdp_event_unpartitioned SELECT * FROM cdp_event",
            "DROP TABLE cdp_event",
            "ALTER TABLE cdp_event_unpartitioned RENAME TO cdp_event",
            "ALTER TABLE cdp_event ADD CONSTRAINT cdp_event_pkey PRIMARY KEY (id)",
            "CREATE INDEX event_profile_time_idx ON cdp_event (profile_id, occurred_at)",
            "CREATE UNIQUE INDEX event_message_unique ON cdp_event (source_id, message_id) "
            "WHERE message_id IS NOT NULL",
        ))


class Migration(migrations.Migration):
    dependencies = [("cdp", "0010_source_time_zone")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
