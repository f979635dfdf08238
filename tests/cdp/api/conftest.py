"""Fixtures for the integrator API: real keys made through the service, and clients."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from cdp.core.http.scopes import SCOPES


@pytest.fixture
def make_key(db):
    from cdp.api.services.api_keys import api_key_create

    def make(*scopes: str, source=None, name: str = "test key", expires_days=None):
        key, plaintext = api_key_create(name=name, scopes=list(scopes or SCOPES),
                                        source_key=source.key if source else None, expires_days=expires_days)
        return key, plaintext

    return make


@pytest.fixture
def make_client(make_key):
    def make(*scopes: str, source=None) -> APIClient:
        _, plaintext = make_key(*scopes, source=source)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
        client.api_key = plaintext
        return client

    return make


@pytest.fixture
def api_client(make_client):
    """A key with every scope."""
    return make_client(*SCOPES)


@pytest.fixture
def shop(source_factory):
    return source_factory("shop")

