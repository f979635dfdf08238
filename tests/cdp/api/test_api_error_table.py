"""docs/api.md's table of error codes against what the server answers: every documented code
is provoked here and must come back with its documented status (docs said 422 for
invalid_cursor, invalid_limit and invalid_idempotency_key; the server answers 400)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from api_helpers import post_profiles, record
from rest_framework.test import APIClient

from cdp.core.http.errors import ApiErrorCode
from cdp.core.http.models import IdempotencyRecord, IdempotencyStatus
from cdp.errors import CdpErrorCode
from cdp.models import Source
from cdp.services.erasure import profile_erase

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \| ")
# Raised by create_api_key and the admin only, never over HTTP.
NOT_HTTP = {CdpErrorCode.INVALID_SCOPE, CdpErrorCode.INVALID_EXPIRY}


def documented() -> dict[str, int]:
    section = DOC.read_text().split("## Errors", 1)[1].split("\n## ", 1)[0]
    return {m[1]: int(m[2]) for m in map(ROW.match, section.splitlines()) if m}


def lookup(client, body, **kw):
    return client.post("/api/v1/profiles/lookup", body, format="json", **kw)


def profile(client, external_id, **identifiers):
    return post_profiles(client, "shop", record(external_id, **identifiers)).json()["results"][0]["profile_id"]


def patch(client, pid, body, **headers):
    return client.patch(f"/api/v1/profiles/{pid}", body, format="json", headers=headers or None)


def in_use(client):
    body = {"source": "shop", "records": [record("k-1", email="k@example.com")]}
    client.post("/api/v1/profiles/batch", body, format="json", headers={"Idempotency-Key": "k"})
    IdempotencyRecord.objects.filter(key="k").update(status=IdempotencyStatus.IN_PROGRESS)
    return client.post("/api/v1/profiles/batch", body, format="json", headers={"Idempotency-Key": "k"})


def reused(client):
    post_profiles(client, "shop", record("r-1", email="r@example.com"), **{"Idempotency-Key": "r"})
    return post_profiles(client, "shop", record("r-2", email="r2@example.com"), **{"Idempotency-Key": "r"})


def merged(client):
    first, second = profile(client, "m-1", email="m1@example.com"), profile(client, "m-2", phone="+14155550100")
    survivor = profile(client, "m-3", email="m1@example.com", phone="+14155550100")  # links the two
    absorbed = second if survivor == first else first
    return patch(client, absorbed, {"attributes": {"a": 1}}, **{"If-Match": "*"})


def erased(client):
    pid = profile(client, "e-1", email="e@example.com")
    profile_erase(profile_id=pid)
    return client.get(f"/api/v1/profiles/{pid}")


def identifier_suppressed(client):
    profile_erase(profile_id=profile(client, "s-1", email="gone@example.com"))
    kept = profile(client, "s-2", email="kept@example.com")
    return patch(client, kept, {"identifiers": {"email": "gone@example.com"}}, **{"If-Match": "*"})


def identifier_conflict(client):
    held = profile(client, "c-1", email="c1@example.com")
    profile(client, "c-2", email="c2@example.com")
    return patch(client, held, {"identifiers": {"email": "c2@example.com"}}, **{"If-Match": "*"})


def throttled(client, settings):
    settings.TESSERA_API_RATE = "2/m"
    for _ in range(2):
        lookup(client, {"email": "t@example.com"})
    return lookup(client, {"email": "t@example.com"})


RECIPES = {
    "validation_failed": lambda c, m, s: c.post("/api/v1/profiles/batch", {"records": []}, format="json"),
    "malformed_request": lambda c, m, s: c.post("/api/v1/profiles/batch", "{nope", content_type="application/json"),
    "exactly_one_identifier": lambda c, m, s: lookup(c, {"email": "a@example.com", "phone": "+14155550100"}),
    "source_required": lambda c, m, s: lookup(c, {"crm_id": "C-1"}),
    "invalid_phone": lambda c, m, s: lookup(c, {"phone": "12", "country": "FR"}),
    "invalid_cursor": lambda c, m, s: c.get("/api/v1/merge-conflicts", {"cursor": "junk"}),
    "invalid_limit": lambda c, m, s: c.get("/api/v1/merge-conflicts", {"limit": "-3"}),
    "invalid_idempotency_key": lambda c, m, s: post_profiles(c, "shop", record("i", email="i@example.com"),
                                                              **{"Idempotency-Key": "\u00e9t\u00e9"}),
    "unauthenticated": lambda c, m, s: lookup(APIClient(), {"email": "a@example.com"}, HTTP_AUTHORIZATION="Bearer x"),
    "missing_scope": lambda c, m, s: lookup(m("events:write"), {"email": "a@example.com"}),
    "source_not_allowed": lambda c, m, s: post_profiles(m("profiles:write", source=Source.objects.get(key="crm")),
                                                        "shop", record("x", email="x@example.com")),
    "not_found": lambda c, m, s: c.get("/api/v1/profiles/00000000-0000-4000-8000-000000000000"),
    "method_not_allowed": lambda c, m, s: c.delete("/api/v1/profiles/lookup"),
    "idempotency_key_in_use": lambda c, m, s: in_use(c),
    "identifier_conflict": lambda c, m, s: identifier_conflict(c),
    "identifier_suppressed": lambda c, m, s: identifier_suppressed(c),
    "merged": lambda c, m, s: merged(c),
    "erased": lambda c, m, s: erased(c),
    "precondition_failed": lambda c, m, s: patch(c, profile(c, "p-1", email="p@example.com"), {"attributes": {"a": 1}},
                                                 **{"If-Match": '"999"'}),
    "payload_too_large": lambda c, m, s: c.post("/api/v1/profiles/batch", {"source": "shop", "records": [
        record(str(i), email=f"{'x' * 3000}{i}@example.com") for i in range(1000)]}, format="json"),
    "too_many_records": lambda c, m, s: post_profiles(c, "shop", *[record(str(i), email="a@example.com")
                                                                    for i in range(1001)]),
    "unknown_source": lambda c, m, s: post_profiles(c, "nowhere", record("u", email="u@example.com")),
    "idempotency_key_reused": lambda c, m, s: reused(c),
    "precondition_required": lambda c, m, s: patch(c, profile(c, "q-1", email="q@example.com"), {"attributes": {}}),
    "throttled": lambda c, m, s: throttled(c, s),
}


def test_the_table_names_every_api_error_code_and_each_has_a_recipe():
    table = documented()
    assert {code.value for code in ApiErrorCode} - {c.value for c in NOT_HTTP} <= set(table)
    assert set(table) == set(RECIPES)


@pytest.mark.parametrize("code", sorted(RECIPES))
def test_the_server_answers_each_documented_code_with_its_documented_status(code, api_client, make_client,
                                                                           source_factory, settings):
    source_factory("shop"), source_factory("crm")
    response = RECIPES[code](api_client, make_client, settings)
    body = response.json()
    codes = {body.get("code"), *(e.get("code") for e in body.get("errors") or [])}
    assert (response.status_code, code in codes) == (documented()[code], True), body
