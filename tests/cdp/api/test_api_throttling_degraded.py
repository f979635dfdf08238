"""With Redis (the shared throttle counters) away, throttling counts per process: still
429 over the rate, never a 500 (README, Reliability)."""

from __future__ import annotations

import socket

import pytest
from api_helpers import is_problem

from cdp.core import cache as cache_module

pytestmark = pytest.mark.django_db


def test_with_the_cache_unreachable_a_key_is_still_throttled_and_nothing_fails(make_client, settings, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(cache_module, "_breakers", {})
    settings.CACHES = {"default": {"BACKEND": "cdp.core.cache.ResilientRedisCache",
                                   "LOCATION": f"redis://127.0.0.1:{port}/0",
                                   "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}
    settings.TESSERA_API_RATE = "3/m"
    client = make_client("profiles:read")
    statuses = [client.post("/api/v1/profiles/lookup", {"email": "a@example.com"}, format="json").status_code
                for _ in range(3)]
    assert statuses == [200, 200, 200]
    throttled = client.post("/api/v1/profiles/lookup", {"email": "a@example.com"}, format="json")
    assert is_problem(throttled, 429, "throttled")
