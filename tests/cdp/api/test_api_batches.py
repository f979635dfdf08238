"""Events and items in bulk: per-entry results, limits, sources."""

from __future__ import annotations

import pytest
from api_helpers import is_problem, post_profiles, record

from cdp.models import Event, Item, Profile

pytestmark = pytest.mark.django_db


def post_events(client, source_key, *events, **headers):
    return client.post("/api/v1/events/batch", {"source": source_key, "events": list(events)}, format="json",
                       headers=headers or None)


def test_events_are_stored_and_explained_per_event(api_client, shop):
    profile_id = post_profiles(api_client, "shop", record("o-1", email="a@example.com")).json()["results"][0][
        "profile_id"]
    response = post_events(
        api_client, "shop",
        {"profile": {"email": "a@example.com"}, "type": "purchase", "item_id": "i1", "price": "9.99",
         "message_id": "m-1"},
        {"profile_id": profile_id, "type": "view", "item_id": "i2"},
        {"profile": {"email": "a@example.com"}, "type": "teleport"},
        {"profile": {"email": "a@example.com"}, "type": "purchase", "item_id": "i1", "message_id": "m-1"},
        {"profile": {"email": "new@example.com"}, "type": "view", "item_id": "i3"},
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "accepted", "rejected", "duplicate", "accepted"]
    assert results[0]["profile_id"] == results[1]["profile_id"] == profile_id
    assert results[2]["errors"][0]["field"] == "type" and results[2]["errors"][0]["code"] == "invalid_choice"
    assert results[4]["profile_id"] != profile_id
    assert Event.objects.count() == 3 and Profile.objects.count() == 2


def test_more_than_5000_events_is_413(api_client, shop):
    events = [{"profile_id": "3f1c0a7e-0000-4000-8000-000000000001", "type": "custom"}] * 5001
    assert is_problem(post_events(api_client, "shop", *events), 413, "too_many_records")
    assert not Event.objects.exists()


def test_5000_events_fit(api_client, shop):
    profile_id = post_profiles(api_client, "shop", record("o-1", email="a@example.com")).json()["results"][0][
        "profile_id"]
    events = [{"profile_id": profile_id, "type": "view", "item_id": f"item-{i}", "message_id": f"m-{i}"}
              for i in range(5000)]
    response = post_events(api_client, "shop", *events)
    assert response.status_code == 200
    assert Event.objects.count() == 5000


def test_events_from_an_unknown_source_are_422(api_client):
    assert is_problem(post_events(api_client, "nowhere", {"profile_id": "x", "type": "view"}), 422, "unknown_source")


def test_items_are_upserted_by_id(api_client):
    url = "/api/v1/items/batch"
    first = api_client.post(url, {"items": [{"id": "i1", "title": "Tea", "category": "drinks"},
                                            {"id": "i2", "title": "", "category": "drinks"}]}, format="json")
    assert [(r["status"], r["id"]) for r in first.json()["results"]] == [("created", "i1"), ("rejected", None)]
    assert first.json()["results"][1]["errors"][0]["field"] == "title"
    second = api_client.post(url, {"items": [{"id": "i1", "title": "Green tea", "category": "drinks"},
                                             {"id": "i3", "title": "Mug", "category": "kitchen"}]}, format="json")
    assert [r["status"] for r in second.json()["results"]] == ["updated", "created"]
    third = api_client.post(url, {"items": [{"id": "i3", "title": "Mug", "category": "kitchen"}]}, format="json")
    assert third.json()["results"][0]["status"] == "unchanged"
    assert Item.objects.get(pk="i1").title == "Green tea"


def test_more_than_1000_items_is_413(api_client):
    items = [{"id": f"i{i}", "title": "T", "category": "c"} for i in range(1001)]
    assert is_problem(api_client.post("/api/v1/items/batch", {"items": items}, format="json"), 413)
    assert not Item.objects.exists()
