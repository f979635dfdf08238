"""The lock that keeps a consent withdrawal and a pipeline write from crossing.

A chunk checks consent and writes derived rows in one transaction holding this lock
shared; the withdrawal (and erasure) handlers hold it exclusively while they delete. So
either the chunk commits first and the handler deletes what it wrote, or the handler
commits first and the chunk's consent check already sees the withdrawal: no derived row
of a person who withdrew survives the race. The chunk's write transactions are short (the
computing happens before them), so a withdrawal waits at most for one of them.

PostgreSQL: a transaction-scoped advisory lock in the two-key form, which never collides
with the one-key locks of identity resolution. SQLite: write transactions are already
exclusive (BEGIN IMMEDIATE), so nothing is needed.
"""

from __future__ import annotations

from django.db import connection

_NAMESPACE = 0x5E9A  # "personalization" in the advisory two-key space
_DERIVED_DATA = 1


def derived_data_write_lock() -> None:
    """Shared: pipeline chunks writing features, memberships or recommendations."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [_NAMESPACE, _DERIVED_DATA])


def derived_data_delete_lock() -> None:
    """Exclusive: a withdrawal or erasure deleting one person's derived data."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_NAMESPACE, _DERIVED_DATA])
