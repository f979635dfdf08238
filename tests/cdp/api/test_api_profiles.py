"""Profiles over HTTP: batch upsert, limits, lookup, read with ETag, corrections with If-Match."""

from __future__ import annotations

import json

import pytest
from api_helpers import CANARY, CANARY_EMAIL, is_problem, post_profiles, record

from cdp.models import AttributeValue, Identity, Profile, ProfileStatus, SourceRecord
from cdp.services.erasure import profile_erase

pytestmark = pytest.mark.django_db


def profile_url(profile_id) -> str:
    return f"/api/v1/profiles/{profile_id}"


def create_profile(api_client, **identifiers) -> str:
    response = post_profiles(api_client, "shop", record(identifiers.pop("external_id", "o-1"), **identifiers))
    assert response.status_code == 200, response.content
    return response.json()["results"][0]["profile_id"]


# --- batch ------------------------------------------------------------------------------

def test_a_batch_stores_the_valid_records_and_explains_each_invalid_one(api_client, shop):
    response = post_profiles(
        api_client, "shop",
        record("o-1", email="ana@example.com", attributes={"first_name": "Ana"}),
        record("o-2", email="not-an-email"),
        {"identifiers": {"email": "no-external-id@example.com"}},
        "not an object",
        record("o-5", phone="+14155550132"),
        record("o-6", email="null"),
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4, 5]
    assert [r["status"] for r in results] == ["created", "rejected", "rejected", "rejected", "created", "rejected"]
    assert results[1]["errors"] == [{"field": "identifiers.email", "code": "invalid_email",
                                     "message": results[1]["errors"][0]["message"]}]
    assert {(e["field"], e["code"]) for e in results[2]["errors"]} == {("external_id", "required")}
    assert results[3]["errors"][0]["code"] == "wrong_type"
    assert results[5]["errors"][0]["code"] == "no_usable_identifier"
    assert all(r["profile_id"] is None for r in results if r["status"] == "rejected")
    assert Profile.objects.count() == 2
    assert SourceRecord.objects.count() == 2


def test_an_empty_batch_answers_no_results(api_client, shop):
    response = post_profiles(api_client, "shop")
    assert response.status_code == 200 and response.json() == {"results": []}


def test_too_many_records_is_413_for_the_whole_request(api_client, shop):
    records = [record(f"o-{i}", email=f"p{i}@example.com") for i in range(1001)]
    assert is_problem(post_profiles(api_client, "shop", *records), 413, "too_many_records")
    assert not Profile.objects.exists()


def test_a_body_over_2_mb_is_413(api_client, shop):
    padding = "x" * 3000
    records = [record(f"o-{i}", email=f"p{i}@example.com", attributes={"note": padding}) for i in range(800)]
    response = post_profiles(api_client, "shop", *records)
    assert is_problem(response, 413, "payload_too_large")
    assert not Profile.objects.exists()


def test_one_record_over_32_kb_is_rejected_alone(api_client, shop):
    response = post_profiles(api_client, "shop", record("o-1", email="a@example.com"),
                             record("o-2", email="b@example.com", attributes={"note": "x" * 40000}))
    assert [r["status"] for r in response.json()["results"]] == ["created", "rejected"]
    assert response.json()["results"][1]["errors"][0]["code"] == "record_too_large"


def test_malformed_json_is_400(api_client, shop):
    response = api_client.post("/api/v1/profiles/batch", data=b'{"source": "shop", "records": [',
                               content_type="application/json")
    assert is_problem(response, 400, "malformed_request")


def test_an_unpaired_surrogate_escape_is_400_and_stores_nothing(api_client, shop):
    # JSON syntax, but no text UTF-8 (or the encryption of a field) can hold.
    body = (b'{"source": "shop", "records": [{"external_id": "o-1", "identifiers": {"email": "a@example.com"},'
            b' "attributes": {"first_name": "A\\ud800"}}]}')
    response = api_client.post("/api/v1/profiles/batch", data=body, content_type="application/json")
    assert is_problem(response, 400, "malformed_request")
    assert not Profile.objects.exists()


@pytest.mark.parametrize("body", [{"records": []}, {"source": "shop"}, {"source": "shop", "records": {}},
                                  {"source": ["shop"], "records": []}, []])
def test_a_body_that_does_not_fit_the_schema_is_400(api_client, shop, body):
    response = api_client.post("/api/v1/profiles/batch", body, format="json")
    assert is_problem(response, 400, "validation_failed")
    assert response.json()["errors"]


def test_an_unknown_source_is_422(api_client):
    assert is_problem(post_profiles(api_client, "nowhere", record("o-1", email="a@example.com")), 422,
                      "unknown_source")


def test_a_key_bound_to_a_source_writes_only_as_it(make_client, source_factory):
    source_factory("shop"), source_factory("crm")
    client = make_client("profiles:write", source=source_factory("pos"))
    assert post_profiles(client, "pos", record("o-1", email="a@example.com")).status_code == 200
    assert is_problem(post_profiles(client, "crm", record("o-2", email="b@example.com")), 403, "source_not_allowed")
    assert is_problem(post_profiles(client, "nowhere", record("o-3", email="c@example.com")), 403,
                      "source_not_allowed")
    assert Profile.objects.count() == 1


# --- lookup -----------------------------------------------------------------------------

def test_lookup_by_email_finds_the_profile(api_client, shop):
    profile_id = create_profile(api_client, email="Ana@Example.com", attributes={"first_name": "Ana"})
    response = api_client.post("/api/v1/profiles/lookup", {"email": " ana@example.COM "}, format="json")
    assert response.status_code == 200
    [profile] = response.json()["results"]
    assert profile["id"] == profile_id
    assert profile["identifiers"] == {"email": ["ana@example.com"]}
    assert profile["attributes"]["first_name"] == {"value": "Ana", "source": "shop",
                                                   "observed_at": profile["attributes"]["first_name"]["observed_at"]}
    assert set(profile) == {"id", "identifiers", "attributes", "created_at", "updated_at"}
    assert response["Cache-Control"] == "no-store"


def test_lookup_of_nobody_is_empty(api_client, shop):
    response = api_client.post("/api/v1/profiles/lookup", {"phone": "+14155550100"}, format="json")
    assert response.status_code == 200 and response.json() == {"results": []}


def test_lookup_by_crm_id_needs_the_source(api_client, source_factory):
    source_factory("crm")
    post_profiles(api_client, "crm", record("c-1", crm_id="C-77"))
    assert is_problem(api_client.post("/api/v1/profiles/lookup", {"crm_id": "C-77"}, format="json"), 400)
    response = api_client.post("/api/v1/profiles/lookup", {"crm_id": "C-77", "source": "crm"}, format="json")
    assert len(response.json()["results"]) == 1
    assert is_problem(api_client.post("/api/v1/profiles/lookup", {"crm_id": "C-77", "source": "zzz"},
                                      format="json"), 422, "unknown_source")


@pytest.mark.parametrize("body", [{}, {"email": "a@example.com", "phone": "+14155550100"}, {"source": "shop"}])
def test_lookup_needs_exactly_one_identifier(api_client, shop, body):
    assert is_problem(api_client.post("/api/v1/profiles/lookup", body, format="json"), 400)


def test_lookups_and_reads_are_recorded_without_personal_data(api_client, shop, caplog):
    profile_id = create_profile(api_client, email=CANARY_EMAIL, attributes={"nickname": CANARY})
    with caplog.at_level("INFO", logger="tessera.personal_data_access"):
        api_client.post("/api/v1/profiles/lookup", {"email": CANARY_EMAIL}, format="json")
        api_client.get(profile_url(profile_id))
    entries = [r for r in caplog.records if r.name == "tessera.personal_data_access"]
    assert [e.purpose for e in entries] == ["api_profile_lookup", "api_profile_read"]
    for entry in entries:
        assert entry.profile_ids == [profile_id]
        assert entry.fields == ["attributes.nickname", "identifiers.email"]
        assert entry.actor.startswith("api_key:tsk_") or entry.actor.startswith("api_key:")
    logged = "\n".join(str(vars(r)) for r in caplog.records)
    assert CANARY not in logged and CANARY_EMAIL not in logged


# --- read -----------------------------------------------------------------------------------

def test_get_answers_the_profile_with_an_etag(api_client, shop):
    profile_id = create_profile(api_client, email="ana@example.com")
    response = api_client.get(profile_url(profile_id))
    assert response.status_code == 200
    assert response["ETag"] == f'"{Profile.objects.get(pk=profile_id).version}"'
    assert response.json()["id"] == profile_id


def test_a_merged_away_id_answers_merged_into(api_client, shop):
    first = create_profile(api_client, external_id="o-1", email="a@example.com")
    second = create_profile(api_client, external_id="o-2", phone="+14155550132")
    post_profiles(api_client, "shop", record("o-3", email="a@example.com", phone="+14155550132"))
    response = api_client.get(profile_url(second))
    assert response.status_code == 200
    assert response.json() == {"id": second, "merged_into": first}


def test_an_erased_profile_is_410(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com")
    profile_erase(profile_id=profile_id)
    assert is_problem(api_client.get(profile_url(profile_id)), 410, "erased")


@pytest.mark.parametrize("profile_id", ["3f1c0a7e-0000-4000-8000-000000000000", "not-a-uuid"])
def test_an_unknown_id_is_404(api_client, profile_id):
    assert is_problem(api_client.get(profile_url(profile_id)), 404, "not_found")


# --- corrections ----------------------------------------------------------------------------

def test_patch_needs_if_match(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com")
    response = api_client.patch(profile_url(profile_id), {"attributes": {"first_name": "Ana"}}, format="json")
    assert is_problem(response, 428, "precondition_required")


def test_patch_with_a_stale_etag_is_412(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com")
    stale = api_client.get(profile_url(profile_id))["ETag"]
    post_profiles(api_client, "shop", record("o-1", email="a@example.com", attributes={"city": "Porto"}))
    response = api_client.patch(profile_url(profile_id), {"attributes": {"first_name": "Ana"}}, format="json",
                                headers={"If-Match": stale})
    assert is_problem(response, 412, "precondition_failed")
    assert not AttributeValue.objects.filter(name="first_name").exists()


def test_patch_records_the_correction_as_the_operator_and_bumps_the_etag(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com", attributes={"first_name": "Anna"})
    etag = api_client.get(profile_url(profile_id))["ETag"]
    response = api_client.patch(profile_url(profile_id),
                                {"attributes": {"first_name": "Ana"}, "identifiers": {"phone": "+351912345678"}},
                                format="json", headers={"If-Match": etag})
    assert response.status_code == 200
    assert response.json() == {"id": profile_id, "status": "updated"}
    assert response["ETag"] != etag
    profile = api_client.get(profile_url(profile_id))
    assert profile["ETag"] == response["ETag"]
    body = profile.json()
    assert body["attributes"]["first_name"]["value"] == "Ana"
    assert body["attributes"]["first_name"]["source"] == "operator"
    assert body["identifiers"]["phone"] == ["+351912345678"]
    correction = SourceRecord.objects.get(source__key="operator")
    assert correction.profile_id == Profile.objects.get(pk=profile_id).pk
    assert Identity.objects.get(kind="phone").record_id == correction.id


def test_a_weak_or_star_if_match_is_accepted(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com")
    etag = api_client.get(profile_url(profile_id))["ETag"]
    first = api_client.patch(profile_url(profile_id), {"attributes": {"a": 1}}, format="json",
                             headers={"If-Match": f"W/{etag}"})
    assert first.status_code == 200
    second = api_client.patch(profile_url(profile_id), {"attributes": {"a": 2}}, format="json",
                              headers={"If-Match": "*"})
    assert second.status_code == 200


def test_a_patch_that_changes_nothing_keeps_the_etag(api_client, shop):
    profile_id = create_profile(api_client, email="a@example.com")
    etag = api_client.get(profile_url(profile_id))["ETag"]
    response = api_client.patch(profile_url(profile_id), {"identifiers": {"email": "A@example.com"}},
                                format="json", headers={"If-Match": etag})
    assert response.json()["status"] == "unchanged" and response["ETag"] == etag


def test_patch_with_an_identifier_of_another_profile_is_409(api_client, shop):
    profile_id = create_profile(api_client, external_id="o-1", email="a@example.com")
    create_profile(api_client, external_id="o-2", email="b@example.com")
    etag = api_client.get(profile_url(profile_id))["ETag"]
    response = api_client.patch(profile_url(profile_id), {"identifiers": {"email": "b@example.com"}},
                                format="json", headers={"If-Match": etag})
    assert is_problem(response, 409, "identifier_conflict")
    assert "b@example.com" not in response.content.decode()
    assert Identity.objects.filter(kind="email").count() == 2
    assert api_client.get(profile_url(profile_id))["ETag"] == etag


@pytest.mark.parametrize("body, field", [
    ({"attributes": {"Bad Name": 1}}, "attributes"),  # an invalid name is not repeated
    ({"attributes": {"nickname": None}}, "attributes.nickname"),
    ({"identifiers": {"crm_id": "C1"}}, "identifiers.crm_id"),
    ({"identifiers": {"email": "not-an-email"}}, "identifiers.email"),
    ({}, "body"),
])
def test_invalid_corrections_are_400(api_client, shop, body, field):
    profile_id = create_profile(api_client, email="a@example.com")
    etag = api_client.get(profile_url(profile_id))["ETag"]
    response = api_client.patch(profile_url(profile_id), body, format="json", headers={"If-Match": etag})
    assert is_problem(response, 400)
    assert field in [e["field"] for e in response.json()["errors"]]


def test_a_bound_key_cannot_correct_as_the_operator(make_client, shop, api_client):
    profile_id = create_profile(api_client, email="a@example.com")
    etag = api_client.get(profile_url(profile_id))["ETag"]
    bound = make_client("profiles:write", source=shop)
    response = bound.patch(profile_url(profile_id), {"attributes": {"a": 1}}, format="json",
                           headers={"If-Match": etag})
    assert is_problem(response, 403, "source_not_allowed")


def test_patch_of_merged_erased_and_unknown_profiles(api_client, shop):
    kept = create_profile(api_client, external_id="o-1", email="a@example.com")
    merged = create_profile(api_client, external_id="o-2", phone="+14155550132")
    post_profiles(api_client, "shop", record("o-3", email="a@example.com", phone="+14155550132"))
    body = {"attributes": {"a": 1}}
    assert is_problem(api_client.patch(profile_url(merged), body, format="json", headers={"If-Match": "*"}), 409,
                      "merged")
    profile_erase(profile_id=kept)
    assert is_problem(api_client.patch(profile_url(kept), body, format="json", headers={"If-Match": "*"}), 410)
    assert is_problem(api_client.patch(profile_url("3f1c0a7e-0000-4000-8000-000000000000"), body, format="json",
                                       headers={"If-Match": "*"}), 404)
    assert Profile.objects.filter(status=ProfileStatus.ACTIVE).count() == 0


# --- nothing personal in errors -------------------------------------------------------------

def test_no_error_echoes_a_rejected_value(api_client, shop):
    responses = [
        post_profiles(api_client, "shop", record("o-1", email=f"{CANARY}@@bad", phone=CANARY)),
        post_profiles(api_client, "shop", {"external_id": CANARY * 20, "identifiers": {"email": CANARY_EMAIL},
                                           "observed_at": CANARY}),
        api_client.post("/api/v1/profiles/batch", {"source": CANARY, "records": []}, format="json"),
        api_client.post("/api/v1/profiles/batch", {"source": {"x": CANARY}, "records": CANARY}, format="json"),
        api_client.post("/api/v1/profiles/lookup", {"email": CANARY_EMAIL, "phone": CANARY}, format="json"),
        api_client.post("/api/v1/profiles/lookup", {"crm_id": CANARY}, format="json"),
        api_client.post("/api/v1/profiles/batch", data=f'{{"source": "{CANARY}", '.encode(),
                        content_type="application/json"),
        api_client.post("/api/v1/events/batch", {"source": "shop", "events": [
            {"profile": {"email": CANARY_EMAIL}, "type": CANARY, "price": CANARY, "occurred_at": CANARY}]},
            format="json"),
        api_client.post("/api/v1/items/batch", {"items": [{"id": "i1", "title": CANARY * 40, "category": 5}]},
                        format="json"),
        api_client.get(profile_url(CANARY)),
    ]
    for response in responses:
        assert response.status_code < 500
        text = response.content.decode()
        assert CANARY not in text, text


def test_errors_are_problem_json(api_client, shop):
    response = api_client.post("/api/v1/profiles/batch", {"records": []}, format="json")
    assert is_problem(response, 400, "validation_failed")
    body = response.json()
    assert body["type"].startswith("https://") and body["title"] and body["detail"]
    assert json.dumps(body)  # plain JSON document
