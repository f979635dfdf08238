"""Bugs the conformance and canary runs found, pinned down one by one."""

from __future__ import annotations

import pytest
from api_helpers import is_problem, post_profiles, record

pytestmark = pytest.mark.django_db

SECRET = "Jane.Secret@Example.org"


def test_a_nul_character_rejects_that_item_or_event_alone_instead_of_a_500(api_client, shop):
    """PostgreSQL's text and jsonb cannot hold NUL: the insert used to fail the whole batch."""
    items = api_client.post("/api/v1/items/batch", {"items": [
        {"id": "a\u0000b", "title": "t", "category": "c"},
        {"id": "ok-1", "title": "t", "category": "c", "attributes": {"k\u0000": ["\u0000"]}},
        {"id": "ok-2", "title": "Kettle", "category": "kitchen"}]}, format="json")
    assert items.status_code == 200, items.content
    assert [(r["status"], [e["code"] for e in r["errors"]]) for r in items.json()["results"]] == [
        ("rejected", ["invalid_character"]), ("rejected", ["invalid_character"]), ("created", [])]

    post_profiles(api_client, "shop", record("p-1", email="p1@example.org"))
    events = api_client.post("/api/v1/events/batch", {"source": "shop", "events": [
        {"profile": {"email": "p1@example.org"}, "type": "custom", "name": "a\u0000b"},
        {"profile": {"email": "p1@example.org"}, "type": "view", "item_id": "ok-2"},
        {"profile": {"email": "p1@example.org"}, "type": "custom", "name": "x", "message_id": "\u0000"}]},
        format="json")
    assert events.status_code == 200, events.content
    results = events.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["status"] for r in results] == ["rejected", "accepted", "rejected"]
    assert results[0]["errors"][0]["code"] == "invalid_character"


@pytest.mark.parametrize("path, body", [
    ("/api/v1/dsr", {"type": SECRET, "identifiers": {"email": "a@example.org"}}),
    ("/api/v1/consents/batch", {"channel": SECRET, "records": [{"profile_id": "x", "purpose": "marketing",
                                                                 "granted": True}]}),
])
def test_an_unknown_choice_is_not_repeated_in_the_error(api_client, path, body):
    response = api_client.post(path, body, format="json")
    assert is_problem(response, 400, "validation_failed")
    assert response.json()["errors"][0]["code"] == "invalid_choice"
    assert SECRET.lower() not in response.content.decode().lower()


def test_an_invalid_attribute_name_or_identifier_kind_is_not_repeated_in_batch_answers(api_client, shop):
    response = post_profiles(api_client, "shop",
                             {"external_id": "x1", "identifiers": {"email": "b@example.org"},
                              "attributes": {SECRET: 1}},
                             {"external_id": "x2", "identifiers": {SECRET: "1", "email": "c@example.org"}})
    assert response.status_code == 200
    errors = [e for r in response.json()["results"] for e in r["errors"]]
    assert {(e["field"], e["code"]) for e in errors} == {("attributes", "invalid_name"),
                                                         ("identifiers", "unknown_identifier")}
    assert SECRET.lower() not in response.content.decode().lower()
    from cdp.core.http.models import IdempotencyRecord  # nor stored for replay

    replayable = post_profiles(api_client, "shop", {"external_id": "x3", "identifiers": {"email": "d@example.org"},
                                                    "attributes": {SECRET: 1}}, **{"Idempotency-Key": "k-1"})
    assert replayable.status_code == 200
    assert SECRET.lower() not in str(IdempotencyRecord.objects.get(key="k-1").response_body).lower()


def test_an_invalid_key_is_not_repeated_in_correction_errors(api_client, shop):
    profile_id = post_profiles(api_client, "shop", record("p-1", email="p1@example.org")).json()["results"][0][
        "profile_id"]
    etag = api_client.get(f"/api/v1/profiles/{profile_id}")["ETag"]
    for body in ({"attributes": {SECRET: 1}}, {"identifiers": {SECRET: {"nested": 1}}}):
        response = api_client.patch(f"/api/v1/profiles/{profile_id}", body, format="json",
                                    headers={"If-Match": etag})
        assert is_problem(response, 400)
        assert SECRET.lower() not in response.content.decode().lower(), response.content
        assert {e["field"] for e in response.json()["errors"]} <= {"attributes", "identifiers"}
