"""Every endpoint × a key lacking its scope → 403 naming the scope; bound keys stay in their source."""

from __future__ import annotations

import pytest
from api_helpers import is_problem

from cdp.core.http.scopes import SCOPES

pytestmark = pytest.mark.django_db

PROFILE = "3f1c0a7e-0000-4000-8000-000000000001"
MERGE = "3f1c0a7e-0000-4000-8000-000000000002"

ENDPOINTS = [
    ("post", "/api/v1/profiles/batch", {"source": "shop", "records": []}, "profiles:write"),
    ("post", "/api/v1/profiles/lookup", {"email": "a@example.com"}, "profiles:read"),
    ("get", f"/api/v1/profiles/{PROFILE}", None, "profiles:read"),
    ("patch", f"/api/v1/profiles/{PROFILE}", {"attributes": {"a": 1}}, "profiles:write"),
    ("get", "/api/v1/merge-conflicts", None, "profiles:write"),
    ("post", f"/api/v1/merges/{MERGE}/unmerge", None, "profiles:write"),
    ("post", "/api/v1/events/batch", {"source": "shop", "events": []}, "events:write"),
    ("post", "/api/v1/items/batch", {"items": []}, "items:write"),
]


def call(client, method, url, body):
    return getattr(client, method)(url, body, format="json", headers={"If-Match": "*"})


@pytest.mark.parametrize("method, url, body, scope", ENDPOINTS, ids=[f"{m} {u}" for m, u, _, _ in ENDPOINTS])
def test_a_key_with_every_other_scope_is_refused(make_client, source_factory, method, url, body, scope):
    source_factory("shop")
    client = make_client(*[s for s in SCOPES if s != scope])
    response = call(client, method, url, body)
    assert is_problem(response, 403, "missing_scope")
    assert response.json()["missing_scope"] == scope


@pytest.mark.parametrize("method, url, body, scope", ENDPOINTS, ids=[f"{m} {u}" for m, u, _, _ in ENDPOINTS])
def test_a_key_with_only_that_scope_gets_past_authorization(make_client, source_factory, method, url, body, scope):
    source_factory("shop")
    response = call(make_client(scope), method, url, body)
    assert response.status_code not in (401, 403), response.content


@pytest.mark.parametrize("method, url, body, scope", ENDPOINTS, ids=[f"{m} {u}" for m, u, _, _ in ENDPOINTS])
def test_no_key_is_401_everywhere(method, url, body, scope):
    from rest_framework.test import APIClient

    response = call(APIClient(), method, url, body)
    assert is_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("url, body", [
    ("/api/v1/profiles/batch", {"source": "crm", "records": [{"external_id": "1", "identifiers": {"crm_id": "1"}}]}),
    ("/api/v1/events/batch", {"source": "crm", "events": [{"profile_id": PROFILE, "type": "custom"}]}),
])
def test_a_bound_key_cannot_write_as_another_source(make_client, source_factory, url, body):
    shop, _ = source_factory("shop"), source_factory("crm")
    client = make_client("profiles:write", "events:write", source=shop)
    assert is_problem(client.post(url, body, format="json"), 403, "source_not_allowed")
    own = {**body, "source": "shop"}
    assert client.post(url, own, format="json").status_code == 200


def test_a_method_an_endpoint_lacks_is_405(api_client):
    assert is_problem(api_client.delete(f"/api/v1/profiles/{PROFILE}"), 405, "method_not_allowed")


def test_a_handler_without_a_declared_scope_is_refused_to_every_key(api_client, monkeypatch):
    from cdp.api.v1.views.profiles import ProfileDetailApi

    monkeypatch.setattr(ProfileDetailApi, "required_scopes", {"GET": "profiles:read"})
    response = api_client.patch(f"/api/v1/profiles/{PROFILE}", {}, format="json", headers={"If-Match": "*"})
    assert is_problem(response, 403, "forbidden")
