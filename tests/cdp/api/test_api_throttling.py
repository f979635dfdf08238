"""Per-key throttling: 429 with Retry-After once a key exceeds TESSERA_API_RATE."""

from __future__ import annotations

import pytest
from api_helpers import is_problem

pytestmark = pytest.mark.django_db


def test_a_key_over_its_rate_is_429_with_retry_after(make_client, settings):
    settings.TESSERA_API_RATE = "3/m"
    busy, other = make_client("profiles:read"), make_client("profiles:read")
    statuses = [busy.post("/api/v1/profiles/lookup", {"email": "a@example.com"}, format="json").status_code
                for _ in range(3)]
    assert statuses == [200, 200, 200]
    throttled = busy.post("/api/v1/profiles/lookup", {"email": "a@example.com"}, format="json")
    assert is_problem(throttled, 429, "throttled")
    assert 1 <= int(throttled["Retry-After"]) <= 60
    # Counted per key: another key is unaffected.
    assert other.post("/api/v1/profiles/lookup", {"email": "a@example.com"}, format="json").status_code == 200


def test_the_default_rate_is_50_per_second(settings):
    from cdp.core.http.throttling import ApiKeyRateThrottle

    assert settings.TESSERA_API_RATE == "50/s"
    assert ApiKeyRateThrottle().parse_rate("50/s") == (50, 1)
