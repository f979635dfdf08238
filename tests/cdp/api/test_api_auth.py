"""API keys: bearer authentication, scopes, expiry, revocation, last use, the command and the admin."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from api_helpers import is_problem
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create, api_key_revoke
from cdp.core.http.keys import secret_hash
from cdp.core.http.models import ApiKey

pytestmark = pytest.mark.django_db

URL = "/api/v1/profiles/lookup"
BODY = {"email": "nobody@example.com"}


def bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def assert_unauthenticated(response) -> None:
    assert is_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_valid_key_is_accepted(make_key):
    _, plaintext = make_key("profiles:read")
    response = bearer(plaintext).post(URL, BODY, format="json")
    assert response.status_code == 200 and response.json() == {"results": []}


def test_no_key_is_401_with_www_authenticate():
    assert_unauthenticated(APIClient().post(URL, BODY, format="json"))


@pytest.mark.parametrize("header", [
    "Bearer tsk_nope_nope", "Bearer not-a-key", "Bearer", "Basic dXNlcjpwYXNz", "Bearer a b",
])
def test_malformed_or_unknown_keys_are_401(header, make_key):
    make_key("profiles:read")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    assert_unauthenticated(client.post(URL, BODY, format="json"))


def test_a_wrong_secret_with_a_real_prefix_is_401(make_key):
    key, plaintext = make_key("profiles:read")
    assert_unauthenticated(bearer(plaintext[:-4] + "AAAA").post(URL, BODY, format="json"))


def test_an_expired_key_is_401(make_key):
    key, plaintext = make_key("profiles:read", expires_days=1)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(plaintext).post(URL, BODY, format="json")
    assert_unauthenticated(response)
    assert "expired" in response.json()["detail"]


def test_a_revoked_key_is_401(make_key):
    key, plaintext = make_key("profiles:read")
    api_key_revoke(api_key_id=key.pk)
    response = bearer(plaintext).post(URL, BODY, format="json")
    assert_unauthenticated(response)
    assert "revoked" in response.json()["detail"]


def test_a_key_lacking_the_scope_is_403_naming_it(make_key):
    _, plaintext = make_key("events:write")
    response = bearer(plaintext).post(URL, BODY, format="json")
    assert is_problem(response, 403, "missing_scope")
    assert response.json()["missing_scope"] == "profiles:read"


def test_only_a_hash_of_the_secret_is_stored(make_key):
    key, plaintext = make_key("profiles:read")
    _, prefix, secret = plaintext.split("_", 2)
    key.refresh_from_db()
    assert key.prefix == prefix and key.secret_hash == secret_hash(secret)
    stored = " ".join(str(getattr(key, f.attname)) for f in ApiKey._meta.concrete_fields)
    assert secret not in stored and plaintext not in stored


def test_last_use_is_recorded_at_most_once_a_minute(make_key):
    key, plaintext = make_key("profiles:read")
    assert key.last_used_at is None
    client = bearer(plaintext)
    client.post(URL, BODY, format="json")
    first = ApiKey.objects.get(pk=key.pk).last_used_at
    assert first is not None
    client.post(URL, BODY, format="json")
    assert ApiKey.objects.get(pk=key.pk).last_used_at == first
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=first - timedelta(minutes=2))
    client.post(URL, BODY, format="json")
    assert ApiKey.objects.get(pk=key.pk).last_used_at > first - timedelta(minutes=2)


def test_unknown_scopes_are_refused_by_the_service():
    with pytest.raises(Exception, match="scopes"):
        api_key_create(name="x", scopes=["profiles:read", "everything"])


# --- the command ------------------------------------------------------------------------

def test_create_api_key_prints_the_key_last(source_factory):
    source_factory("crm")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "CRM sync", "--scopes", "profiles:write,profiles:read", "--source", "crm",
                 "--expires-days", "30", stdout=out, stderr=err)
    plaintext = out.getvalue().strip().splitlines()[-1]
    key = ApiKey.objects.get()
    assert plaintext.startswith(f"tsk_{key.prefix}_")
    assert key.scopes == ["profiles:read", "profiles:write"] and key.source.key == "crm"
    assert key.expires_at is not None
    assert plaintext not in err.getvalue()
    assert bearer(plaintext).post(URL, BODY, format="json").status_code == 200


@pytest.mark.parametrize("args, fragment", [
    (["--scopes", "profiles:read,root"], "scopes"),
    (["--scopes", "profiles:read", "--source", "nope"], "No source"),
    (["--scopes", "profiles:read", "--expires-days", "0"], "expires-days"),
])
def test_create_api_key_fails_with_one_sentence(args, fragment):
    with pytest.raises(CommandError, match=fragment):
        call_command("create_api_key", "k", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiKey.objects.exists()


# --- the admin ----------------------------------------------------------------------------

def test_the_admin_creates_a_key_and_shows_it_once(admin_client):
    response = admin_client.post("/admin/api/apikey/add/", {"name": "shop", "scopes": ["items:write"]},
                                 follow=True)
    assert response.status_code == 200
    key = ApiKey.objects.get()
    page = response.content.decode()
    shown = [m.message for m in response.context["messages"]]
    assert any(f"tsk_{key.prefix}_" in m for m in shown)
    token = next(word for m in shown for word in m.split() if word.startswith("tsk_"))
    assert bearer(token).post("/api/v1/items/batch", {"items": []}, format="json").status_code == 200
    listing = admin_client.get("/admin/api/apikey/").content.decode()
    detail = admin_client.get(f"/admin/api/apikey/{key.pk}/change/").content.decode()
    for html in (listing, detail):
        assert key.prefix in html
        assert token not in html and key.secret_hash not in html
    assert token in page  # the one time it is shown


def test_the_admin_revokes_keys(admin_client, make_key):
    key, plaintext = make_key("profiles:read")
    response = admin_client.post("/admin/api/apikey/", {"action": "revoke", "_selected_action": [str(key.pk)]},
                                 follow=True)
    assert response.status_code == 200
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert_unauthenticated(bearer(plaintext).post(URL, BODY, format="json"))
