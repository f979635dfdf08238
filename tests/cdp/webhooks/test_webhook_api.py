"""The webhooks and change feed endpoints: scopes, shapes, validation, secrets shown once."""

from __future__ import annotations

import json
import uuid

import pytest

from cdp.core.http.models import IdempotencyRecord
from cdp.core.outbox import outbox_put
from cdp.webhooks.models import WebhookSubscription

pytestmark = pytest.mark.django_db

MANAGE, CHANGES = "webhooks:manage", "changes:read"


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:400])
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


def create(client, url="https://hooks.example.com/tessera", events=("consent.changed",), **headers):
    return client.post("/api/v1/webhooks", {"url": url, "events": list(events)}, format="json",
                       headers=headers or None)


def test_every_webhook_endpoint_needs_the_webhooks_manage_scope(make_client):
    owner = make_client(MANAGE)
    webhook_id = create(owner).json()["id"]
    other = make_client("profiles:read", CHANGES)
    for response in (other.get("/api/v1/webhooks"), create(other, url="https://other.example.com/"),
                     other.delete(f"/api/v1/webhooks/{webhook_id}"),
                     other.post(f"/api/v1/webhooks/{webhook_id}/rotate-secret", {}, format="json")):
        body = problem(response, 403, "missing_scope")
        assert body["missing_scope"] == MANAGE


def test_no_key_is_401(client):
    assert client.get("/api/v1/webhooks").status_code == 401
    assert client.get("/api/v1/changes").status_code == 401


def test_create_answers_the_secret_once_and_lists_never_show_it(make_client):
    client = make_client(MANAGE)
    response = create(client, events=["profile.erased", "consent.changed", "dsr.completed", "recommendations.updated"])
    assert response.status_code == 201
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["events"] == ["consent.changed", "dsr.completed", "profile.erased", "recommendations.updated"]
    assert uuid.UUID(body["id"]) and body["previous_secret_expires_at"] is None
    listed = client.get("/api/v1/webhooks").json()
    assert listed["next_cursor"] is None
    assert [w["id"] for w in listed["results"]] == [body["id"]]
    assert "secret" not in listed["results"][0]
    assert body["secret"] not in json.dumps(listed)


def test_a_replayed_create_does_not_show_or_store_the_secret(make_client):
    client = make_client(MANAGE)
    first = create(client, **{"Idempotency-Key": "create-1"})
    replay = create(client, **{"Idempotency-Key": "create-1"})
    assert first.status_code == replay.status_code == 201
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == {**first.json(), "secret": None}
    assert WebhookSubscription.objects.count() == 1
    stored = json.dumps(list(IdempotencyRecord.objects.values("response_body", "response_headers")))
    assert first.json()["secret"] not in stored


def test_rotate_answers_a_new_secret_and_the_window(make_client):
    client = make_client(MANAGE)
    created = create(client).json()
    response = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret", {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["secret"].startswith("whsec_") and body["secret"] != created["secret"]
    assert body["previous_secret_expires_at"] is not None and body["secret_rotated_at"] is not None
    immediate = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret",
                            {"previous_secret_expires_in": 0}, format="json").json()
    assert immediate["previous_secret_expires_at"] is None
    too_long = client.post(f"/api/v1/webhooks/{created['id']}/rotate-secret",
                           {"previous_secret_expires_in": 8 * 86400}, format="json")
    problem(too_long, 400, "validation_failed")


def test_delete_stops_the_subscription_and_unknown_ids_are_404(make_client):
    client = make_client(MANAGE)
    webhook_id = create(client).json()["id"]
    assert client.delete(f"/api/v1/webhooks/{webhook_id}").status_code == 204
    assert client.get("/api/v1/webhooks").json()["results"] == []
    problem(client.delete(f"/api/v1/webhooks/{webhook_id}"), 404, "not_found")
    problem(client.post(f"/api/v1/webhooks/{webhook_id}/rotate-secret", {}, format="json"), 404, "not_found")
    problem(client.delete("/api/v1/webhooks/not-a-uuid"), 404, "not_found")
    # The URL is free again once deleted.
    assert create(client).status_code == 201


def test_one_live_subscription_per_url(make_client):
    client = make_client(MANAGE)
    create(client)
    problem(create(client, events=["profile.erased"]), 409, "webhook_url_exists")


@pytest.mark.parametrize(("url", "code"), [
    ("ftp://hooks.example.com/x", "invalid_scheme"),
    ("javascript:alert(1)", "invalid_scheme"),
    ("https://user:pass@hooks.example.com/x", "url_has_credentials"),
    ("https:///nohost", "invalid_url"),
    ("https://hooks.example.com/a b", "invalid_url"),
    ("https://hooks.example.com:99999/", "invalid_url"),
    ("https://hooks.example.com/x#frag", "invalid_url"),
    ("https://hooks.example.com/" + "a" * 2100, "invalid_url"),
])
def test_bad_urls_are_refused_without_echoing_them(make_client, url, code):
    body = problem(create(make_client(MANAGE), url=url), 400, "validation_failed")
    assert body["errors"][0]["field"] == "url" and body["errors"][0]["code"] == code
    assert "hooks.example.com" not in json.dumps(body) and "pass" not in json.dumps(body)


def test_production_requires_https_and_a_public_host(make_client, settings):
    settings.PRODUCTION = True
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    client = make_client(MANAGE)
    assert problem(create(client, url="http://hooks.example.com/x"), 400,
                   "validation_failed")["errors"][0]["code"] == "https_required"
    for internal in ("https://127.0.0.1/x", "https://10.1.2.3/x", "https://169.254.169.254/latest",
                     "https://[::1]/x", "https://localhost/x", "https://[::ffff:192.168.0.1]/x"):
        assert problem(create(client, url=internal), 400,
                       "validation_failed")["errors"][0]["code"] == "private_address"
    assert create(client, url="https://hooks.example.com/x").status_code == 201


@pytest.mark.parametrize("url", [
    "https://127.0.0.1./", "https://[::ffff:7f00:1]/", "https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo
    "https://[fd00::1]/", "https://[fe80::1%25eth0]/", "https://[ff02::1]/", "https://[::]/", "https://224.0.0.1/",
    "https://100.64.0.1/", "https://240.0.0.1/", "https://255.255.255.255/", "https://198.18.0.1/",
])
def test_production_refuses_every_kind_of_non_public_address(make_client, settings, url):
    settings.PRODUCTION = True
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert problem(create(make_client(MANAGE), url=url), 400,
                   "validation_failed")["errors"][0]["code"] == "private_address"


@pytest.mark.parametrize("url", [
    "https://8.8.8.8/hook", "https://134744072/hook", "https://[2606:4700:4700::1111]/hook",
    "https://[64:ff9b::808:808]/hook", "https://[2002:808:808::1]/hook",  # NAT64 and 6to4 to 8.8.8.8
])
def test_production_accepts_public_addresses_in_any_form(make_client, settings, url):
    settings.PRODUCTION = True
    settings.TESSERA_WEBHOOK_ALLOW_PRIVATE_NETWORKS = False
    assert create(make_client(MANAGE), url=url).status_code == 201


def test_unknown_or_missing_events_are_refused(make_client):
    client = make_client(MANAGE)
    body = problem(create(client, events=["profile.exploded"]), 400, "validation_failed")
    assert body["errors"][0] == {"field": "events", "code": "unknown_event", "message": body["errors"][0]["message"]}
    assert "exploded" not in json.dumps(body)
    problem(create(client, events=[]), 400, "validation_failed")
    problem(client.post("/api/v1/webhooks", {"url": "https://a.example.com/"}, format="json"), 400,
            "validation_failed")


def test_the_change_feed_endpoint(make_client):
    problem(make_client(MANAGE).get("/api/v1/changes"), 403, "missing_scope")
    client = make_client(CHANGES)
    empty = client.get("/api/v1/changes").json()
    assert empty == {"results": [], "next_cursor": "0", "has_more": False}
    profile_id = str(uuid.uuid4())
    outbox_put(topic="profile.created", payload={"profile_id": profile_id})
    outbox_put(topic="profile.erased", payload={"profile_id": profile_id})
    first = client.get("/api/v1/changes", {"limit": 1}).json()
    assert [c["type"] for c in first["results"]] == ["profile.created"] and first["has_more"] is True
    assert first["results"][0]["profile_id"] == profile_id
    rest = client.get("/api/v1/changes", {"cursor": first["next_cursor"]}).json()
    assert [c["type"] for c in rest["results"]] == ["profile.erased"] and rest["has_more"] is False
    problem(client.get("/api/v1/changes", {"cursor": "nope"}), 400, "invalid_cursor")
    problem(client.get("/api/v1/changes", {"cursor": "12345"}), 400, "invalid_cursor")
    problem(client.get("/api/v1/changes", {"limit": "0"}), 400, "invalid_limit")


def test_operators_see_the_delivery_log_in_the_admin_but_never_a_secret(admin_client, receiver, subscribe):
    from cdp.webhooks.models import WebhookDelivery
    from cdp.webhooks.services.relay import webhooks_relay

    created = subscribe(receiver.url, events=["profile.erased"])
    outbox_put(topic="profile.erased", payload={"profile_id": str(uuid.uuid4())})
    webhooks_relay()
    delivery = WebhookDelivery.objects.get()
    pages = [admin_client.get("/admin/webhooks/webhooksubscription/"),
             admin_client.get(f"/admin/webhooks/webhooksubscription/{created.subscription.id}/change/"),
             admin_client.get("/admin/webhooks/webhookdelivery/"),
             admin_client.get(f"/admin/webhooks/webhookdelivery/{delivery.id}/change/")]
    for page in pages:
        assert page.status_code == 200
        assert created.secret not in page.content.decode()
    assert "succeeded" in pages[3].content.decode()


def test_batching_is_opt_in_per_subscription(make_client):
    client = make_client("webhooks:manage")
    plain = client.post("/api/v1/webhooks", {"url": "https://a.example.com/hook", "events": ["profile.updated"]},
                        format="json").json()
    batched = client.post("/api/v1/webhooks", {"url": "https://b.example.com/hook", "events": ["profile.updated"],
                                               "batch_size": 100}, format="json").json()
    assert (plain["batch_size"], batched["batch_size"]) == (1, 100)
    listed = {w["url"]: w["batch_size"] for w in client.get("/api/v1/webhooks").json()["results"]}
    assert listed == {"https://a.example.com/hook": 1, "https://b.example.com/hook": 100}
    refused = client.post("/api/v1/webhooks", {"url": "https://c.example.com/hook", "events": ["profile.updated"],
                                               "batch_size": 501}, format="json")
    assert refused.status_code == 400
