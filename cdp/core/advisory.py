"""Transaction-scoped PostgreSQL advisory locks, taken in a stable order.

Two batches naming the same new person queue on the same lock instead of both creating
a profile; sorting the keys means they can never wait on each other in a cycle. On
SQLite the write transaction itself is exclusive (BEGIN IMMEDIATE), so nothing is needed.
"""

from __future__ import annotations

from django.db import connection

from cdp.core.crypto_primitives import advisory_lock_key


def advisory_locks(hex_keys) -> None:
    if connection.vendor != "postgresql":
        return
    ints = sorted({advisory_lock_key(key) for key in hex_keys})
    if not ints:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(k) FROM unnest(%b::bigint[]) WITH ORDINALITY AS t(k, n) ORDER BY n",
            [ints],
        )
