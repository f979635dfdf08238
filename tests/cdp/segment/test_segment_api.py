"""The Segment endpoints over plain HTTP (Django test client) against the real database."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from cdp.models import DataKey, Event, Identity, Profile, ProfileStatus, SourceRecord
from cdp.segment import services as segment_services
from cdp.segment.models import IngestionError, IngestionErrorIdentifier
from cdp.segment.services import (
    ingestion_error_message_read,
    ingestion_errors_purge,
    ingestion_errors_shred,
)
from cdp.selectors import profile_unified_view
from cdp.services.erasure import profile_erase

pytestmark = pytest.mark.django_db

CANARY = "canary.7f3a@example.com"


@pytest.fixture
def post(client, segment_source, basic_auth):
    def send(path, body, *, write_key=None, gzipped=False, raw=None, headers=None):
        data = raw if raw is not None else json.dumps(body).encode()
        extra = {"HTTP_AUTHORIZATION": basic_auth(write_key or segment_source.write_key)}
        if gzipped:
            data = gzip.compress(data)
            extra["HTTP_CONTENT_ENCODING"] = "gzip"
        extra.update(headers or {})
        return client.post(path, data=data, content_type="application/json", **extra)

    return send


def live_profiles():
    return Profile.objects.filter(status=ProfileStatus.ACTIVE)


def ok(response):
    assert response.status_code == 200, response.content
    assert response.json() == {"success": True}


def the_profile():
    [profile] = live_profiles()
    return profile_unified_view(profile_id=profile.id)


def test_identify_creates_a_profile_with_identifiers_and_snake_case_attributes(post):
    ok(post("/v1/identify", {"userId": "u1", "anonymousId": "a1", "messageId": "m1",
                             "traits": {"email": "Ada@Example.com", "firstName": "Ada",
                                        "address": {"city": "London"}}}))
    view = the_profile()
    assert view["identifiers"] == {"anonymous_id": ["a1"], "email": ["ada@example.com"], "user_id": ["u1"]}
    assert view["attributes"]["first_name"]["value"] == "Ada"
    assert view["attributes"]["address"]["value"] == {"city": "London"}
    assert view["attributes"]["first_name"]["source"] == "web"
    assert Identity.objects.get(kind="user_id").namespace == "web"  # user ids are scoped by source


def test_re_sent_identify_is_unchanged(post):
    body = {"userId": "u1", "traits": {"plan": "pro"}, "timestamp": "2024-01-01T00:00:00Z"}
    ok(post("/v1/identify", body))
    ok(post("/v1/identify", {**body, "timestamp": "2024-01-02T00:00:00Z", "messageId": "again"}))
    assert SourceRecord.objects.count() == 1


def test_track_product_viewed_stores_a_view(post):
    ok(post("/v1/track", {"userId": "u1", "event": "Product Viewed", "messageId": "m1",
                          "properties": {"product_id": "p1", "price": 12.5},
                          "timestamp": "2024-03-01T12:00:00Z"}))
    event = Event.objects.get()
    assert (event.type, event.item_id, str(event.price), event.message_id) == ("view", "p1", "12.50", "m1")
    assert event.occurred_at.isoformat() == "2024-03-01T12:00:00+00:00"
    assert the_profile()["identifiers"] == {"user_id": ["u1"]}


def test_page_is_a_custom_page_viewed_event(post):
    ok(post("/v1/page", {"anonymousId": "a1", "name": "Home", "properties": {"url": "https://x.example/"}}))
    event = Event.objects.get()
    assert (event.type, event.name) == ("custom", "Page Viewed")


def test_alias_links_the_anonymous_profile_with_the_users(post):
    ok(post("/v1/track", {"anonymousId": "a1", "event": "Product Viewed", "properties": {"sku": "p1"}}))
    ok(post("/v1/identify", {"userId": "u1", "traits": {"email": "ada@example.com"}}))
    assert live_profiles().count() == 2
    ok(post("/v1/alias", {"previousId": "a1", "userId": "u1"}))
    view = the_profile()
    assert view["identifiers"] == {"anonymous_id": ["a1"], "email": ["ada@example.com"], "user_id": ["u1"]}
    assert Event.objects.get().profile_id == live_profiles().get().id


def test_alias_between_two_known_user_ids_is_logged_for_operators(post):
    ok(post("/v1/identify", {"userId": "old"}))
    ok(post("/v1/identify", {"userId": "new"}))
    ok(post("/v1/alias", {"previousId": "old", "userId": "new"}))
    assert live_profiles().count() == 2
    assert IngestionError.objects.get().codes == ["alias_between_user_ids"]


def test_a_track_naming_user_and_anonymous_id_stitches_their_profiles(post):
    ok(post("/v1/track", {"anonymousId": "a1", "event": "Clicked"}))
    ok(post("/v1/identify", {"userId": "u1"}))
    ok(post("/v1/track", {"userId": "u1", "anonymousId": "a1", "event": "Clicked"}))
    assert the_profile()["identifiers"] == {"anonymous_id": ["a1"], "user_id": ["u1"]}
    assert Event.objects.filter(profile__status=ProfileStatus.ACTIVE).count() == 2


def test_events_of_a_batch_that_merges_their_people_go_to_the_survivor(post):
    ok(post("/v1/identify", {"userId": "u1"}))
    ok(post("/v1/track", {"anonymousId": "a1", "event": "Clicked"}))  # a profile of its own, newer
    ok(post("/v1/batch", {"batch": [
        {"type": "track", "anonymousId": "a1", "event": "Before"},
        {"type": "track", "userId": "u1", "anonymousId": "a1", "event": "Stitching"},  # merges a1 into u1
        {"type": "track", "anonymousId": "a1", "event": "After"},
    ]}))
    survivor = live_profiles().get()
    assert set(Event.objects.values_list("profile_id", flat=True)) == {survivor.id}
    assert Event.objects.count() == 4


def test_gzip_batch_with_write_key_in_the_body(client, segment_source):
    body = {"writeKey": segment_source.write_key, "sentAt": "2024-01-01T00:00:00Z", "batch": [
        {"type": "identify", "userId": "u1", "traits": {"name": "Ada"}},
        {"type": "track", "userId": "u1", "event": "Signed Up"},
    ]}
    response = client.post("/v1/batch", data=gzip.compress(json.dumps(body).encode()),
                           content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    ok(response)
    assert Event.objects.get().name == "Signed Up"
    assert the_profile()["attributes"]["name"]["value"] == "Ada"


def test_order_completed_is_one_purchase_per_product_and_a_resend_is_not_stored_twice(post):
    order = {"batch": [{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "order-1",
                        "properties": {"products": [{"product_id": "p1", "quantity": 2, "price": 10},
                                                    {"product_id": "p2", "price": 5}]}}]}
    ok(post("/v1/batch", order))
    ok(post("/v1/batch", order, gzipped=True))
    assert sorted(Event.objects.values_list("item_id", "quantity", "message_id")) == [
        ("p1", 2, "order-1:0"), ("p2", 1, "order-1:1")]


def test_a_duplicate_message_id_is_stored_once(post):
    message = {"type": "track", "userId": "u1", "event": "Clicked", "messageId": "dup-1"}
    ok(post("/v1/batch", {"batch": [message, message]}))
    ok(post("/v1/track", message))
    assert Event.objects.count() == 1
    assert not IngestionError.objects.exists()  # a duplicate is not an error


@pytest.mark.parametrize("write_key", ["wk_unknown", ""])
def test_an_unknown_write_key_is_401_json(client, write_key, basic_auth):
    response = client.post("/v1/batch", data=json.dumps({"batch": []}), content_type="application/json",
                           HTTP_AUTHORIZATION=basic_auth(write_key))
    assert response.status_code == 401
    assert response.json()["success"] is False and response.json()["code"] == "unauthenticated"
    assert write_key not in response.content.decode() or not write_key


def test_no_credentials_at_all_is_401(client, db):
    response = client.post("/v1/track", data=json.dumps({"userId": "u1", "event": "E"}),
                           content_type="application/json")
    assert response.status_code == 401


def test_malformed_json_is_400_without_echo(post):
    response = post("/v1/batch", None, raw=b'{"batch": [' + CANARY.encode())
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert CANARY not in response.content.decode()


@pytest.mark.parametrize("text", ['"\\ud800"', "NaN"])
def test_json_no_storage_can_hold_is_400_and_stores_nothing(post, text):
    # An unpaired surrogate escape is JSON syntax but no UTF-8 text; NaN is no JSON at all.
    message = '{"type": "track", "userId": "u-1", "event": "Viewed", "messageId": "m-1", "properties": {"note": '
    raw = ('{"batch": [' + message + text + "}}]}").encode()
    response = post("/v1/batch", None, raw=raw)
    assert response.status_code == 400 and response.json()["success"] is False
    assert not Event.objects.exists() and not Profile.objects.exists()


def test_an_escaped_emoji_is_stored(post):
    raw = (b'{"batch": [{"type": "identify", "userId": "u-1", "messageId": "m-1",'
           b' "traits": {"firstName": "Ana \\ud83d\\ude00"}}]}')
    ok(post("/v1/batch", None, raw=raw))
    assert the_profile()["attributes"]["first_name"]["value"] == "Ana \U0001f600"


def test_a_batch_that_is_not_a_list_is_400(post):
    assert post("/v1/batch", {"batch": {"type": "track"}}).status_code == 400


def test_a_gzip_bomb_is_413(post, settings):
    settings.TESSERA_SEGMENT_MAX_BODY_BYTES = 64 * 1024
    response = post("/v1/batch", None, raw=b'{"batch": [' + b" " * 10_000_000 + b"]}", gzipped=True)
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def test_too_many_messages_is_413(post):
    response = post("/v1/batch", {"batch": [{"type": "track"}] * 5001})
    assert response.status_code == 413
    assert not IngestionError.objects.exists()


def test_a_malformed_message_is_kept_encrypted_and_the_rest_is_stored(post):
    batch = {"batch": [
        {"type": "track", "userId": "u1", "event": "Clicked", "messageId": "ok-1"},
        {"type": "launch", "userId": "u2", "writeKey": "wk_leak", "traits": {"email": CANARY}},
        {"type": "identify", "userId": "u3", "traits": {"email": "not-an-email"}},
        {"type": "track", "event": "Clicked", "context": {"traits": {"email": CANARY}}},
        {"type": "identify", "userId": "u4", "traits": {"plan": "pro"}},
    ]}
    ok(post("/v1/batch", batch))
    assert Event.objects.get().message_id == "ok-1"
    assert live_profiles().count() == 2  # u1 and u4
    errors = {e.message_type: e for e in IngestionError.objects.all()}
    assert {t: e.codes for t, e in errors.items()} == {
        "unknown": ["unknown_type"], "identify": ["invalid_email"], "track": ["missing_user_id_and_anonymous_id"]}
    for error in errors.values():
        assert CANARY.encode() not in bytes(error.message)
        assert CANARY.encode() not in json.dumps(error.codes).encode()
    unknown = ingestion_error_message_read(error=errors["unknown"])
    assert unknown["traits"]["email"] == CANARY
    assert "writeKey" not in unknown  # the write key is a secret, never stored
    # Each row has its own data key, so rows can be shredded one by one.
    assert len({e.data_key_id for e in errors.values()}) == 3


def test_a_partly_stored_order_logs_the_products_left_out(post):
    ok(post("/v1/track", {"userId": "u1", "event": "Order Completed", "messageId": "o1",
                          "properties": {"products": [{"product_id": "p1"}, {"name": "no id"}]}}))
    assert Event.objects.get().item_id == "p1"
    assert IngestionError.objects.get().codes == ["missing_product_id"]


def test_an_erased_person_is_answered_success_and_nothing_is_stored(post):
    ok(post("/v1/identify", {"userId": "u1", "anonymousId": "a1", "traits": {"email": CANARY}}))
    profile_erase(profile_id=live_profiles().get().id)
    records, events = SourceRecord.objects.count(), Event.objects.count()
    ok(post("/v1/batch", {"batch": [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}},
        {"type": "track", "anonymousId": "a1", "event": "Product Viewed", "properties": {"product_id": "p1"}},
        {"type": "track", "userId": "other", "event": "Clicked", "context": {"traits": {"email": CANARY}}},
        {"type": "launch", "userId": "u1"},  # malformed, but about an erased person: not kept either
    ]}))
    assert SourceRecord.objects.count() == records
    assert Event.objects.count() == events
    assert not live_profiles().exists()
    assert not IngestionError.objects.exists()


def test_a_batch_costs_one_resolution_call_and_one_events_call(post, monkeypatch):
    """Identify and alias records, the links that stitch an event's ids and the new
    people the events name are resolved together, then the events stored together."""
    calls = {"profiles": 0, "events": 0}

    def counting(name, real):
        def wrapper(**kwargs):
            calls[name] += 1
            return real(**kwargs)
        return wrapper

    monkeypatch.setattr(segment_services, "profiles_ingest", counting("profiles", segment_services.profiles_ingest))
    monkeypatch.setattr(segment_services, "events_store", counting("events", segment_services.events_store))
    batch = [{"type": "identify", "userId": f"u{i}", "anonymousId": f"a{i}"} for i in range(20)]
    batch += [{"type": "track", "userId": f"u{i}", "anonymousId": f"a{i}", "event": "E"} for i in range(20)]
    batch += [{"type": "alias", "userId": f"u{i}", "previousId": f"p{i}"} for i in range(5)]
    batch += [{"type": "track", "anonymousId": f"new{i}", "event": "E"} for i in range(5)]  # new people
    batch += [{"type": "page", "userId": f"v{i}", "anonymousId": f"b{i}"} for i in range(3)]  # new, stitched
    ok(post("/v1/batch", {"batch": batch}))
    assert calls == {"profiles": 1, "events": 1}
    assert Event.objects.count() == 20 + 5 + 3 and live_profiles().count() == 20 + 5 + 3
    # Each new person holds their ids once: the link records made them, no extra record did.
    assert SourceRecord.objects.filter(status="attached").count() == 20 + 5 + 5 + 3


def test_retention_purges_error_rows_with_their_keys(post):
    ok(post("/v1/batch", {"batch": [{"type": "launch", "userId": "u1"}]}))
    error = IngestionError.objects.get()
    assert ingestion_errors_purge(received_before=timezone.now() - timedelta(days=1)) == 0
    assert ingestion_errors_purge(received_before=timezone.now() + timedelta(seconds=1)) == 1
    assert not IngestionError.objects.exists()
    assert not DataKey.objects.filter(id=error.data_key_id).exists()


def test_erasure_can_shred_a_persons_error_rows_by_blind_index(post):
    ok(post("/v1/batch", {"batch": [{"type": "launch", "userId": "u1", "traits": {"email": CANARY}},
                                    {"type": "launch", "userId": "u2"}]}))
    keys = [(i.kind, i.namespace, i.blind_index) for i in IngestionErrorIdentifier.objects.filter(kind="email")]
    assert len(keys) == 1
    assert ingestion_errors_shred(identity_keys=keys) == 1
    assert IngestionError.objects.count() == 1
    assert DataKey.objects.count() == 1


def test_admin_lists_errors_without_content_and_decrypts_on_the_detail_page(post, admin_client):
    ok(post("/v1/batch", {"batch": [{"type": "launch", "userId": "u1", "traits": {"email": CANARY}}]}))
    error = IngestionError.objects.get()
    listing = admin_client.get("/admin/segment/ingestionerror/")
    assert listing.status_code == 200
    assert str(error.id) in listing.content.decode() and CANARY not in listing.content.decode()
    detail = admin_client.get(f"/admin/segment/ingestionerror/{error.id}/change/")
    assert detail.status_code == 200
    assert CANARY in detail.content.decode()


def test_a_data_subject_erasure_shreds_the_error_rows_that_named_the_person(post):
    from consent import registry

    ok(post("/v1/batch", {"batch": [{"type": "identify", "userId": "u1", "traits": {"email": CANARY}},
                                    {"type": "launch", "userId": "u1"},
                                    {"type": "launch", "userId": "someone-else"}]}))
    assert IngestionError.objects.count() == 2
    registry.run(registry.ERASE, profile_id=live_profiles().get().id)
    assert IngestionError.objects.count() == 1
    assert IngestionErrorIdentifier.objects.filter(error__in=IngestionError.objects.all()).count() == 1


def test_a_malformed_single_message_is_answered_success_and_logged(post):
    ok(post("/v1/track", {"userId": "u1", "writeKey": "wk_in_body", "properties": {"email": CANARY}}))
    error = IngestionError.objects.get()
    assert (error.message_type, error.codes) == ("track", ["missing_event"])
    assert "writeKey" not in ingestion_error_message_read(error=error)


def test_a_wire_body_over_the_request_limit_is_413(post, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = post("/v1/batch", {"batch": [{"type": "track", "userId": "u1", "event": "x" * 2000}]})
    assert response.status_code == 413
