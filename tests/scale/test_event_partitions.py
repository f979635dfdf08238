"""Events partitioned by month (PostgreSQL): rows land in their month, partitions are
made ahead, retention drops whole months and deletes rows only where it must, and a
message id is stored once across months."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from cdp.core.partitions import month_after, month_start, partition_create, partitions
from cdp.models import Event
from cdp.services.event_partitions import TABLE, event_partitions_ensure, received_before_outside
from cdp.services.events import events_ingest
from cdp.services.resolution import profiles_ingest
from consent.services.retention import retention_purge, retention_rule_set

pytestmark = pytest.mark.postgres

OLD_MONTH = datetime(2023, 3, 1, tzinfo=UTC)


def _partition_of(event_id) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE id = %s", [event_id])  # noqa: S608
        return cursor.fetchone()[0]


def _ingest(source, email: str, count: int, message_prefix: str | None = None) -> list:
    profiles_ingest(source=source, records=[{"external_id": email, "identifiers": {"email": email}}])
    results = events_ingest(source=source, events=[
        {"profile": {"email": email}, "type": "view", "item_id": f"i{n}",
         **({"message_id": f"{message_prefix}-{n}"} if message_prefix else {})} for n in range(count)])
    return [r.status for r in results]


def _age(source, moment: datetime) -> None:
    """Move a source's events back to `moment` (rows move between partitions)."""
    Event.objects.filter(source=source).update(received_at=moment)


def test_events_land_in_this_months_partition_and_the_coming_months_exist(postgres, source_factory):
    crm = source_factory("crm")
    _ingest(crm, "a@example.com", 2)
    now = timezone.now()
    assert {_partition_of(e) for e in Event.objects.values_list("id", flat=True)} == {
        f"{TABLE}_p{now.year:04d}{now.month:02d}"}
    assert event_partitions_ensure(months_ahead=3) == []  # the migration made them
    made = event_partitions_ensure(months_ahead=5)
    assert len(made) == 2 and event_partitions_ensure(months_ahead=5) == []
    starts = [start for _, start, _ in partitions(TABLE)]
    month = month_start(now)
    for _ in range(6):
        assert month in starts
        month = month_after(month)


def test_a_month_in_the_default_partition_moves_into_its_own_when_made(postgres, source_factory):
    crm = source_factory("crm")
    _ingest(crm, "a@example.com", 3)
    _age(crm, OLD_MONTH + timedelta(days=3))
    assert {_partition_of(e) for e in Event.objects.values_list("id", flat=True)} == {f"{TABLE}_default"}
    assert partition_create(TABLE, "received_at", OLD_MONTH) is True
    assert partition_create(TABLE, "received_at", OLD_MONTH) is False
    assert {_partition_of(e) for e in Event.objects.values_list("id", flat=True)} == {f"{TABLE}_p202303"}
    assert Event.objects.count() == 3


def test_retention_drops_whole_months_and_deletes_rows_only_elsewhere(postgres, source_factory):
    crm, web = source_factory("crm"), source_factory("web")
    _ingest(crm, "old@example.com", 4)
    _age(crm, OLD_MONTH + timedelta(days=1))
    partition_create(TABLE, "received_at", OLD_MONTH)
    _ingest(web, "older@example.com", 2)
    _age(web, OLD_MONTH - timedelta(days=40))  # a month with no partition: in the default one
    _ingest(crm, "new@example.com", 1)

    counts = retention_purge()
    assert counts["events"] == 6
    assert f"{TABLE}_p202303" not in {name for name, _, _ in partitions(TABLE)}
    assert list(Event.objects.values_list("item_id", flat=True)) == ["i0"]  # the new one


def test_a_month_holding_a_source_kept_longer_is_not_dropped(postgres, source_factory):
    crm, web = source_factory("crm"), source_factory("web")
    _ingest(crm, "a@example.com", 3)
    _ingest(web, "b@example.com", 2)
    _age(crm, OLD_MONTH + timedelta(days=2))
    _age(web, OLD_MONTH + timedelta(days=2))
    partition_create(TABLE, "received_at", OLD_MONTH)
    retention_rule_set(kind="events", source="web", days=3650, actor="staff:op")

    counts = retention_purge()
    assert counts["events"] == 3  # crm's rows, deleted from the month web still holds
    assert f"{TABLE}_p202303" in {name for name, _, _ in partitions(TABLE)}
    assert Event.objects.filter(source=web).count() == 2 and not Event.objects.filter(source=crm).exists()


def test_the_ranges_deleted_row_by_row_leave_out_the_dropped_months():
    months = [(f"p{m}", datetime(2023, m, 1, tzinfo=UTC), datetime(2023, m + 1, 1, tzinfo=UTC)) for m in (1, 2, 4)]
    cutoff = datetime(2023, 6, 15, tzinfo=UTC)
    ranges = received_before_outside(cutoff, months)
    assert ranges == (Q(received_at__lt=months[0][1])
                      | Q(received_at__gte=months[1][2], received_at__lt=months[2][1])
                      | Q(received_at__gte=months[2][2], received_at__lt=cutoff))
    assert received_before_outside(cutoff, []) == Q(received_at__lt=cutoff)


def test_a_message_id_is_stored_once_across_months(postgres, source_factory):
    crm = source_factory("crm")
    assert _ingest(crm, "a@example.com", 2, message_prefix="m") == ["accepted", "accepted"]
    _age(crm, OLD_MONTH + timedelta(days=5))
    partition_create(TABLE, "received_at", OLD_MONTH)
    assert _ingest(crm, "a@example.com", 3, message_prefix="m") == ["duplicate", "duplicate", "accepted"]
    assert Event.objects.count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_the_same_message_ids_store_each_once(source_factory):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: set DATABASE_URL=postgres://... to run it")
    crm = source_factory("crm")
    profiles_ingest(source=crm, records=[{"external_id": "a", "identifiers": {"email": "a@example.com"}}])
    events = [{"profile": {"email": "a@example.com"}, "type": "view", "item_id": f"i{n}", "message_id": f"c-{n}"}
              for n in range(50)]
    start = threading.Barrier(4)

    def send(_) -> list[str]:
        try:
            start.wait()
            return [r.status for r in events_ingest(source=crm, events=events)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = [status for batch in pool.map(send, range(4)) for status in batch]
    assert statuses.count("accepted") == 50 and statuses.count("duplicate") == 150
    assert Event.objects.count() == 50
