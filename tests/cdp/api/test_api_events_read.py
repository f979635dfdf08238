"""GET /api/v1/events: a person's events read back, oldest first, by cursor, within the key's boundary."""

from __future__ import annotations

from api_helpers import is_problem, post_profiles, record

from consent.models import AccessLog


def post_events(client, source_key, *events):
    return client.post("/api/v1/events/batch", {"source": source_key, "events": list(events)}, format="json")


def view(email, item, when):
    return {"profile": {"email": email}, "type": "view", "item_id": item, "occurred_at": when}


def profile_of(client, email):
    return client.post("/api/v1/profiles/lookup", {"email": email}, format="json").json()["results"][0]["id"]


def test_events_read_back_oldest_first_by_cursor(api_client, shop):
    post_events(api_client, "shop", view("a@example.com", "i3", "2024-03-01"),
                view("a@example.com", "i1", "2024-01-01"),
                view("a@example.com", "i2", "2024-02-01"), view("b@example.com", "x", "2024-01-01"))
    pid = profile_of(api_client, "a@example.com")
    first = api_client.get("/api/v1/events", {"profile_id": pid, "limit": 2})
    assert first.status_code == 200, first.content
    body = first.json()
    assert [e["item_id"] for e in body["results"]] == ["i1", "i2"] and body["has_more"] is True
    assert set(body["results"][0]) == {"id", "type", "name", "item_id", "quantity", "price", "rating", "occurred_at",
                                       "source"}
    assert body["results"][0]["source"] == "shop" and body["results"][0]["type"] == "view"
    rest = api_client.get("/api/v1/events", {"profile_id": pid, "cursor": body["next_cursor"]}).json()
    assert [e["item_id"] for e in rest["results"]] == ["i3"] and rest == {**rest, "next_cursor": None,
                                                                           "has_more": False}
    assert AccessLog.objects.filter(profile_id=pid, purpose="api_events_read").count() == 2


def test_events_read_needs_its_scope_and_a_profile(api_client, make_client, shop):
    assert is_problem(make_client("events:write").get("/api/v1/events", {"profile_id": "x"}), 403, "missing_scope")
    assert is_problem(api_client.get("/api/v1/events"), 400)
    assert is_problem(api_client.get("/api/v1/events", {"profile_id": "not-a-uuid"}), 404)
    assert is_problem(api_client.get("/api/v1/events", {"profile_id": "00000000-0000-4000-8000-000000000000"}), 404)
    assert is_problem(api_client.get("/api/v1/events", {"profile_id": "x", "cursor": "junk"}), 404)


def test_a_bound_key_reads_only_people_its_source_contributed(api_client, make_client, source_factory):
    shop, crm = source_factory("shop"), source_factory("crm")
    post_events(api_client, "shop", view("a@example.com", "i1", "2024-01-01"))
    pid = profile_of(api_client, "a@example.com")
    assert is_problem(make_client("events:read", source=crm).get("/api/v1/events", {"profile_id": pid}), 404)
    assert make_client("events:read", source=shop).get("/api/v1/events", {"profile_id": pid}).status_code == 200
    post_profiles(api_client, "crm", record("c-1", email="a@example.com"))
    assert make_client("events:read", source=crm).get("/api/v1/events", {"profile_id": pid}).status_code == 200
