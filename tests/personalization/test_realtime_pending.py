"""Real-time refresh beyond recommendations: features and segment assignment move with
the person's events, the events of many requests make one refresh, and integrators who
asked hear about it on `recommendations.updated`. In-process (SQLite or PostgreSQL)."""

from __future__ import annotations

import pytest
from test_realtime import refreshes_counted, segment_track

from cdp.core import outbox
from cdp.core.models import OutboxMessage
from cdp.services.events import events_ingest
from cdp.webhooks.models import WebhookDelivery
from cdp.webhooks.services.relay import deliveries_fan_out
from cdp.webhooks.services.subscriptions import webhook_create
from personalization import segmentation
from personalization.models import ProfileFeatures, RefreshPending, Segmentation, SegmentMembership
from personalization.services import realtime, realtime_pending, segments

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("refresh_in_process")]


def _membership(run_id, person) -> tuple:
    seg = Segmentation.objects.get(run_id=run_id)
    return SegmentMembership.objects.filter(segmentation=seg, profile_id=person).values_list(
        "segment__index", "r_score", "f_score", "m_score").get()


def test_a_purchase_moves_the_person_s_features_and_segment(served):
    index = next(i for i, pid in enumerate(served.profile_ids) if pid in served.analytics and i % 7 == 0)
    person = served.profile_ids[index]  # a browser who never bought
    before = ProfileFeatures.objects.get(run_id=served.run_id, profile_id=person)
    segment_before = _membership(served.run_id, person)
    assert before.frequency == 0 and before.recency_days > 30

    for order in range(6):
        segment_track(served.write_key, {
            "userId": f"u{index}", "event": "Order Completed", "messageId": f"big-{order}",
            "timestamp": f"2026-12-0{order + 1}T10:00:00Z",
            "properties": {"order_id": f"o-big-{order}", "products": [
                {"product_id": served.item_ids[order], "price": 900, "quantity": 1}]}})

    after = ProfileFeatures.objects.get(run_id=served.run_id, profile_id=person)
    assert (after.frequency, after.purchases, after.monetary) == (6, 6, 5400)
    assert after.recency_days < before.recency_days
    # The nearest centroid of the served segmentation, from the stored features, as the
    # pipeline assigns it.
    seg = Segmentation.objects.get(run_id=served.run_id)
    _, matrix = segments.features_matrix(run_id=served.run_id, profile_ids=[person])
    expected = int(segmentation.assign(matrix, seg.model)[0])
    segment_after = _membership(served.run_id, person)
    assert segment_after[0] == expected
    assert segment_after != segment_before, "six big orders change the RFM scores at least"
    assert segment_after[2] >= segment_before[2] and segment_after[3] > segment_before[3]


def test_people_without_analytics_keep_no_features(served):
    person = next(pid for pid in served.profile_ids if pid not in served.analytics)
    events_ingest(source=served.source, events=[
        {"profile_id": str(person), "type": "purchase", "item_id": served.item_ids[0], "price": "10.00",
         "occurred_at": "2026-12-01T12:00:00Z", "message_id": "no-analytics-1"}])
    assert not ProfileFeatures.objects.filter(profile_id=person).exists()
    assert not SegmentMembership.objects.filter(profile_id=person).exists()


def test_the_events_of_many_requests_make_one_refresh(served, monkeypatch, settings):
    """Inside requests the in-process drain runs after the response: events committed by
    several requests before it runs are refreshed once per person."""
    settings.TASKS_IN_PROCESS = True  # no broker (CI sets one)
    calls = refreshes_counted(monkeypatch)
    person, other = sorted(served.personalization)[:2]
    waiting: list = []
    token = outbox._request_wakes.set(waiting)  # as OutboxWakeMiddleware does for a request
    try:
        for n in range(3):
            events_ingest(source=served.source, events=[
                {"profile_id": str(pid), "type": "view", "item_id": served.item_ids[n],
                 "occurred_at": f"2026-12-0{n + 1}T12:00:00Z", "message_id": f"req-{n}-{pid}"}
                for pid in (person, other)])
    finally:
        outbox._request_wakes.reset(token)
    assert calls == [] and RefreshPending.objects.count() == 6
    for callback in waiting:
        callback()
    assert calls == [sorted([str(person), str(other)])]
    assert not RefreshPending.objects.exists()


def test_a_failed_refresh_leaves_the_people_waiting(served, monkeypatch):
    person = sorted(served.personalization)[0]
    RefreshPending.objects.create(profile_id=person, committed_at="2026-12-01T12:00:00Z")

    def failing(**_):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(realtime, "recommendations_refresh", failing)
    with pytest.raises(RuntimeError):
        realtime_pending.refresh_pending_drain()
    assert list(RefreshPending.objects.values_list("profile_id", flat=True)) == [person]
    monkeypatch.undo()
    assert realtime_pending.refresh_pending_drain() == 1 and not RefreshPending.objects.exists()


def test_recommendations_updated_reaches_only_those_who_asked(served):
    person, other = sorted(served.personalization)[:2]
    realtime.recommendations_refresh(profile_ids=[person])
    assert not OutboxMessage.objects.filter(topic=realtime.UPDATED_TOPIC).exists(), "nobody listens yet"

    subscription = webhook_create(url="https://example.com/hooks", events=[realtime.UPDATED_TOPIC]).subscription
    webhook_create(url="https://example.com/other", events=["consent.changed"])
    realtime.recommendations_refresh(profile_ids=[person, other])
    payloads = sorted(OutboxMessage.objects.filter(topic=realtime.UPDATED_TOPIC).values_list("payload", flat=True),
                      key=lambda p: p["profile_id"])
    assert payloads == [{"profile_id": str(person)}, {"profile_id": str(other)}]
    deliveries_fan_out()
    assert {(d.subscription_id, d.message.topic) for d in WebhookDelivery.objects.select_related("message")} == {
        (subscription.id, realtime.UPDATED_TOPIC)}
    no_list = next(pid for pid in served.profile_ids if pid not in served.personalization)
    realtime.recommendations_refresh(profile_ids=[no_list])
    assert OutboxMessage.objects.filter(topic=realtime.UPDATED_TOPIC).count() == 2


def test_with_a_broker_one_drain_is_queued_a_window(served, monkeypatch, settings):
    """While a queued drain waits (its flag in the shared cache), more events only join the
    pending set; the drain, once it runs, clears the flag and refreshes them all once."""
    from django.core.cache import cache

    settings.TASKS_IN_PROCESS = False  # a broker; tasks still run eagerly in the tests
    calls = refreshes_counted(monkeypatch)
    person, other = sorted(served.personalization)[:2]
    cache.delete(realtime_pending._SCHEDULED)
    assert cache.add(realtime_pending._SCHEDULED, 1, timeout=60)  # a drain already queued
    for n, pid in enumerate((person, other, person)):
        events_ingest(source=served.source, events=[
            {"profile_id": str(pid), "type": "view", "item_id": served.item_ids[n],
             "occurred_at": f"2026-12-0{n + 1}T12:00:00Z", "message_id": f"window-{n}"}])
    assert calls == [] and RefreshPending.objects.count() == 3
    assert realtime_pending.refresh_pending_drain() == 3
    assert calls == [sorted([str(person), str(other)])]
    # The flag went with the drain: the next event queues (here: runs) one at once.
    events_ingest(source=served.source, events=[
        {"profile_id": str(other), "type": "view", "item_id": served.item_ids[5],
         "occurred_at": "2026-12-05T12:00:00Z", "message_id": "window-after"}])
    assert calls[-1] == [str(other)] and not RefreshPending.objects.exists()
