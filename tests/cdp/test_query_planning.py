"""A batch's identifier lookup reads the index on PostgreSQL, not the whole table.

Resolution asks for ~2,000 blind indexes at once (`blind_index = ANY(array)`). Priced
with PostgreSQL's default random_page_cost (4, for spinning disks) that lookup is planned
as a whole-table scan once the table holds ~100k identities, and every batch pays it
again; the sessions Tessera opens plan with 1.1 (DATABASE_RANDOM_PAGE_COST).
"""

from __future__ import annotations

import secrets

import pytest

IDENTITIES = 150_000
LOOKUP = 2_000


def _plan(cursor, keys) -> str:
    cursor.execute('EXPLAIN SELECT "kind", "namespace", "blind_index", "profile_id" FROM "cdp_identity" '
                   'WHERE "blind_index" = ANY(%s::text[])', [keys])
    return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def many_identities(postgres):
    with postgres.cursor() as cursor:
        # Rows as resolution writes them (64-hex blind indexes); built in SQL: a second.
        cursor.execute(
            "INSERT INTO cdp_identity (kind, namespace, blind_index, index_key_version, value, priority, assurance, "
            "created_at, last_seen_at, profile_id) SELECT 'email', '', encode(sha256(n::text::bytea), 'hex'), 'v1', "
            "'\\x00'::bytea, 0, 'asserted', now(), now(), gen_random_uuid() FROM generate_series(1, %s) AS n",
            [IDENTITIES])
        cursor.execute("ANALYZE cdp_identity")
        cursor.execute("SELECT blind_index FROM cdp_identity ORDER BY random() LIMIT %s", [LOOKUP // 2])
        known = [row[0] for row in cursor.fetchall()]
        yield cursor, known + [secrets.token_hex(32) for _ in range(LOOKUP - len(known))]
        cursor.execute("DELETE FROM cdp_identity WHERE index_key_version = 'v1' AND value = '\\x00'::bytea")


def test_the_sessions_plan_a_batch_lookup_through_the_index(many_identities):
    cursor, keys = many_identities
    cursor.execute("SHOW random_page_cost")
    assert cursor.fetchone()[0] == "1.1"
    plan = _plan(cursor, keys)
    assert "identity_unique_key" in plan and "Seq Scan" not in plan, plan


def test_at_the_servers_default_price_the_same_lookup_reads_the_table_in_bulk(many_identities):
    # The reason for the setting: at 4 the planner prices index probes as disk seeks and
    # reads the table in bulk: a whole-table scan or (with wider rows, as identities have
    # been since they record their provenance) a bitmap scan over every matching page.
    cursor, keys = many_identities
    cursor.execute("SET LOCAL random_page_cost = 4")
    plan = _plan(cursor, keys).splitlines()[0]
    assert plan.startswith(("Seq Scan", "Bitmap Heap Scan", "Gather")), plan
