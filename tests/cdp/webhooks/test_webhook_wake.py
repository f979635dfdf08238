"""The relay is woken after a commit that wrote changes, once per transaction."""

from __future__ import annotations

import uuid

import pytest
from django.db import transaction

from cdp.core import outbox
from cdp.core.models import OutboxMessage
from cdp.core.outbox import outbox_put
from cdp.models import Profile
from cdp.services.resolution import profiles_ingest

pytestmark = pytest.mark.django_db


def wakes(callbacks) -> int:
    return sum(1 for c in callbacks if c is outbox._wake_after_request)


def test_one_wake_up_per_transaction_however_many_changes(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        for _ in range(3):
            outbox_put(topic="profile.updated", payload={"profile_id": str(uuid.uuid4())})
    assert wakes(callbacks) == 1


def test_a_rolled_back_savepoint_does_not_swallow_the_wake_up(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        try:
            with transaction.atomic():
                outbox_put(topic="profile.updated", payload={"profile_id": str(uuid.uuid4())})
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
        outbox_put(topic="profile.updated", payload={"profile_id": str(uuid.uuid4())})
    assert wakes(callbacks) == 1


def test_a_committed_ingest_reaches_the_receiver_without_a_sweep(receiver, subscribe, source_factory,
                                                                 django_capture_on_commit_callbacks):
    subscribe(receiver.url, events=["profile.created"])
    shop = source_factory("shop")
    with django_capture_on_commit_callbacks(execute=True):
        [result] = profiles_ingest(source=shop, records=[{"external_id": "o-1",
                                                          "identifiers": {"email": "a@example.com"}}])
    [request] = receiver.requests
    assert request.event["type"] == "profile.created"
    assert request.event["data"] == {"profile_id": result.profile_id}


def test_a_failing_wake_up_does_not_fail_the_committed_change(monkeypatch, caplog, receiver, subscribe,
                                                              source_factory, django_capture_on_commit_callbacks):
    """A wake-up that raises (the broker down) is logged; the change stays committed, the other
    listeners still run, and the sweep delivers what the failed wake-up did not."""
    from cdp.webhooks import tasks

    def broken():
        raise ConnectionError("broker down")

    subscribe(receiver.url, events=["profile.created"])
    shop = source_factory("shop")
    monkeypatch.setattr(outbox, "_listeners", [broken])  # nobody else hears of the commit
    with django_capture_on_commit_callbacks(execute=True):
        [first] = profiles_ingest(source=shop, records=[{"external_id": "o-1",
                                                         "identifiers": {"email": "a@example.com"}}])
    assert Profile.objects.filter(id=first.profile_id).exists()
    assert OutboxMessage.objects.filter(topic="profile.created").count() == 1
    assert [r.message for r in caplog.records if r.levelname == "WARNING"] == ["outbox_wake_failed"]
    assert receiver.requests == []
    tasks.relay_sweep()  # beat's sweep: nothing was lost
    assert [r.event["data"] for r in receiver.requests] == [{"profile_id": first.profile_id}]


def test_a_failing_listener_does_not_starve_the_wake_ups_behind_it(monkeypatch, receiver, subscribe, source_factory,
                                                                   django_capture_on_commit_callbacks):
    from cdp.webhooks import tasks

    def broken():
        raise ConnectionError("broker down")

    subscribe(receiver.url, events=["profile.created"])
    shop = source_factory("shop")
    monkeypatch.setattr(outbox, "_listeners", [broken, tasks.relay_wake])
    with django_capture_on_commit_callbacks(execute=True):
        [result] = profiles_ingest(source=shop, records=[{"external_id": "o-1",
                                                          "identifiers": {"email": "a@example.com"}}])
    assert [r.event["data"] for r in receiver.requests] == [{"profile_id": result.profile_id}]


def test_a_burst_of_wake_ups_queues_one_relay_run_until_it_starts(monkeypatch, subscribe):
    from django.core.cache import cache

    from cdp.webhooks import tasks

    subscribe("https://hooks.example.com/tessera")
    queued = []
    monkeypatch.setattr(tasks.webhooks_relay, "delay", lambda: queued.append(1))
    cache.delete(tasks.WAKE_KEY)
    for _ in range(5):
        tasks.relay_wake()
    assert len(queued) == 1
    tasks.webhooks_relay()  # the run starts: the next commit queues a new one
    tasks.relay_wake()
    assert len(queued) == 2
    cache.delete(tasks.WAKE_KEY)


def test_a_commit_wakes_no_relay_while_nobody_listens(monkeypatch, subscribe, receiver):
    from django.core.cache import cache

    from cdp.webhooks import tasks
    from cdp.webhooks.services.subscriptions import webhook_delete

    queued = []
    monkeypatch.setattr(tasks.webhooks_relay, "delay", lambda: queued.append(1))
    cache.delete(tasks.WAKE_KEY)
    tasks.relay_wake()
    assert queued == []  # no subscription: nothing a run could do
    subscription = subscribe(receiver.url, events=["profile.updated"])
    tasks.relay_wake()
    assert queued == [1]
    cache.delete(tasks.WAKE_KEY)
    webhook_delete(subscription_id=subscription.subscription.id)
    tasks.relay_wake()
    assert queued == [1]
    cache.delete(tasks.WAKE_KEY)


def test_wake_ups_inside_a_request_run_once_when_it_has_been_answered(monkeypatch):
    from django.http import HttpResponse

    woken = []
    monkeypatch.setattr(outbox, "_listeners", [lambda: woken.append(1)])
    commit = outbox._wake_after_request  # what each committed transaction that wrote changes calls

    def view(request):
        for _ in range(3):  # three transactions of one request
            commit()
        return HttpResponse("ok")

    response = outbox.OutboxWakeMiddleware(view)(None)
    assert woken == []  # not before the server has the response
    response.close()
    assert woken == [1]
    outbox.OutboxWakeMiddleware(lambda request: HttpResponse("ok"))(None).close()
    assert woken == [1]  # a request that committed no change wakes nobody
    commit()
    assert woken == [1, 1]  # outside any request: at once


def test_a_request_that_fails_after_a_commit_still_wakes(monkeypatch):
    woken = []
    monkeypatch.setattr(outbox, "_listeners", [lambda: woken.append(1)])

    def view(request):
        outbox._wake_after_request()
        raise RuntimeError("after the commit")

    with pytest.raises(RuntimeError):
        outbox.OutboxWakeMiddleware(view)(None)
    assert woken == [1]


@pytest.mark.django_db(transaction=True)
def test_a_segment_batch_committing_several_transactions_wakes_the_relay_once(client, monkeypatch):
    import base64

    from cdp.services.sources import source_create

    woken = []
    monkeypatch.setattr(outbox, "_listeners", [lambda: woken.append(1)])
    _, write_key = source_create(key="web", name="Web", kind="first_party", trust=50)
    batch = [{"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}, "messageId": "m1"},
             {"type": "track", "userId": "u2", "event": "Product Viewed", "messageId": "m2",
              "properties": {"product_id": "p1"}}]  # u2 is new: the events pass creates them
    response = client.post("/v1/batch", data={"batch": batch}, content_type="application/json",
                           HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{write_key}:".encode()).decode())
    assert response.status_code == 200
    assert woken == [1]
