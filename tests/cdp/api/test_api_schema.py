"""The OpenAPI schema and the interactive docs, served without any CDN."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import include, path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

pytestmark = pytest.mark.django_db

OPERATIONS = {
    ("/api/v1/profiles/batch", "post"), ("/api/v1/profiles/lookup", "post"),
    ("/api/v1/profiles/{profile_id}", "get"), ("/api/v1/profiles/{profile_id}", "patch"),
    ("/api/v1/merge-conflicts", "get"), ("/api/v1/merges/{merge_id}/unmerge", "post"),
    ("/api/v1/events/batch", "post"), ("/api/v1/events", "get"), ("/api/v1/items/batch", "post"),
}


def test_the_schema_documents_every_endpoint_with_bearer_auth_and_problems():
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "tsk_<prefix>_<secret>",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"]}
    for route, method in OPERATIONS:
        operation = schema["paths"][route][method]
        assert operation["security"] == [{"apiKey": []}]
        assert "application/problem+json" in operation["responses"]["403"]["content"]
        assert "200" in operation["responses"]


def test_the_schema_of_these_endpoints_is_valid_and_raises_no_warnings():
    """Scoped to this app's routes, so another app's schema warnings are reported by its own
    tests; `manage.py spectacular --validate --fail-on-warn` checks the whole project."""
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("cdp.api.v1.urls"))])
    schema = generator.get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, dict(GENERATOR_STATS._warn_cache)
    assert {(p, m) for p, ops in schema["paths"].items() for m in ops} == OPERATIONS


def test_the_docs_are_served_from_our_own_static_files():
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert "cdn." not in html and "jsdelivr" not in html and "unpkg" not in html
    assert "/static/drf_spectacular_sidecar/" in html
