"""The change feed: order, cursors, has_more, and what the outbox accepts."""

from __future__ import annotations

import uuid

import pytest

from cdp.core.changes import InvalidCursor, changes_list, changes_stamp
from cdp.core.models import OutboxMessage
from cdp.core.outbox import outbox_put, outbox_put_many

pytestmark = pytest.mark.django_db


def put(topic="profile.updated", **payload):
    return outbox_put(topic=topic, payload={"profile_id": str(uuid.uuid4()), **payload})


def read_all(cursor=None, limit=100):
    """Follow the feed until has_more is false; returns (results, last cursor, calls)."""
    results, calls = [], 0
    while True:
        page = changes_list(cursor=cursor, limit=limit)
        calls += 1
        results += page.results
        assert page.next_cursor is not None
        cursor = page.next_cursor
        if not page.has_more:
            return results, cursor, calls


def test_an_empty_feed_answers_a_cursor_to_resume_from():
    page = changes_list()
    assert page.results == [] and page.has_more is False
    assert page.next_cursor == "0"
    again = changes_list(cursor=page.next_cursor)
    assert again.results == [] and again.next_cursor == "0"


def test_pages_follow_each_other_in_position_order_without_gaps_or_repeats():
    written = [put() for _ in range(5)]
    first = changes_list(limit=2)
    assert [r["id"] for r in first.results] == [str(m.event_id) for m in written[:2]]
    assert first.has_more is True
    assert first.next_cursor == str(first.results[-1]["position"])
    rest, cursor, calls = read_all(first.next_cursor, limit=2)
    assert calls == 2  # 2 + 1 rows, the last page not full
    listed = first.results + rest
    assert [r["id"] for r in listed] == [str(m.event_id) for m in written]
    positions = [r["position"] for r in listed]
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert changes_list(cursor=cursor).results == []


def test_a_change_has_the_contract_shape_with_ids_only():
    profile_id = str(uuid.uuid4())
    message = outbox_put(topic="consent.changed", payload={"profile_id": profile_id, "purpose": "marketing",
                                                           "granted": False})
    [change] = changes_list().results
    assert change == {
        "id": str(message.event_id), "position": change["position"], "type": "consent.changed",
        "profile_id": profile_id, "occurred_at": message.created_at.isoformat(),
        "data": {"profile_id": profile_id, "purpose": "marketing", "granted": False},
    }


def test_a_change_written_after_a_cursor_was_handed_out_comes_after_it():
    put(), put()
    _, cursor, _ = read_all()
    late = put()
    page = changes_list(cursor=cursor)
    assert [r["id"] for r in page.results] == [str(late.event_id)]
    assert int(page.next_cursor) > int(cursor)


def test_changes_the_feed_does_not_list_are_skipped_and_the_cursor_moves_past_them():
    listed = put()
    outbox_put(topic="recommendations.updated", payload={"profile_id": str(uuid.uuid4())})
    outbox_put(topic="dsr.completed", payload={"request_id": str(uuid.uuid4()), "status": "completed"})
    page = changes_list()
    assert [r["id"] for r in page.results] == [str(listed.event_id)]
    dsr_position = OutboxMessage.objects.get(topic="dsr.completed").position
    assert page.next_cursor == str(dsr_position)  # not re-read on the next call
    assert changes_list(cursor=page.next_cursor).results == []


def test_rows_get_positions_only_when_stamped_and_once():
    outbox_put_many([("profile.created", {"profile_id": str(uuid.uuid4())}) for _ in range(3)])
    assert OutboxMessage.objects.filter(position__isnull=True).count() == 3
    assert changes_stamp() == 3
    assert changes_stamp() == 0
    assert sorted(OutboxMessage.objects.values_list("position", flat=True)) == [1, 2, 3]


def test_has_more_when_a_stamping_batch_left_rows_behind(monkeypatch):
    monkeypatch.setattr("cdp.core.changes.STAMP_BATCH", 2)
    for _ in range(3):
        put()
    page = changes_list(limit=100)
    assert len(page.results) == 2 and page.has_more is True
    page = changes_list(cursor=page.next_cursor, limit=100)
    assert len(page.results) == 1 and page.has_more is False


@pytest.mark.parametrize("cursor", ["abc", "-1", "1.5", "٣", "9" * 30])
def test_a_malformed_cursor_is_refused(cursor):
    with pytest.raises(InvalidCursor):
        changes_list(cursor=cursor)


def test_a_cursor_beyond_anything_handed_out_is_refused():
    put()
    with pytest.raises(InvalidCursor):
        changes_list(cursor="999")


@pytest.mark.parametrize("payload", [
    {"profile_id": "jane@example.com"},
    {"profile_id": str(uuid.uuid4()), "email": "jane@example.com"},
    {"crm_id": "C-12345"},
    {"profile_id": str(uuid.uuid4()), "purpose": "jane@example.com"},
    {"profile_id": str(uuid.uuid4()), "reason": "Jane Doe moved"},
    {"profile_ids": ["not-a-uuid"]},
])
def test_the_outbox_refuses_anything_but_ids_and_purposes(payload):
    with pytest.raises(ValueError) as raised:
        outbox_put(topic="profile.updated", payload=payload)
    assert "jane" not in str(raised.value).lower() and "C-12345" not in str(raised.value)
    assert not OutboxMessage.objects.exists()


def test_the_outbox_refuses_an_unknown_topic():
    with pytest.raises(ValueError):
        outbox_put(topic="profile.exploded", payload={"profile_id": str(uuid.uuid4())})


def test_the_outbox_accepts_the_payloads_the_apps_send():
    pid, other = str(uuid.uuid4()), str(uuid.uuid4())
    outbox_put(topic="profile.merged", payload={"profile_id": pid, "merged_profile_id": other,
                                                "merge_id": str(uuid.uuid4())})
    outbox_put(topic="consent.changed", payload={"profile_id": pid, "purpose": "sale_sharing", "granted": True,
                                                 "channel": "cmp", "notice_version": "2024-01"})
    outbox_put(topic="dsr.completed", payload={"request_id": str(uuid.uuid4()), "type": "erasure",
                                               "status": "completed", "profile_id": None})
    assert OutboxMessage.objects.count() == 3
