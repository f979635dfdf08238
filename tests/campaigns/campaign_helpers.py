"""Shared set-up for the campaign tests: people with and without marketing consent."""

from __future__ import annotations

import uuid

from rest_framework.test import APIClient

from cdp.services.resolution import profiles_ingest
from consent.services import consent_set


def people(source, n: int, *, consenting: int | None = None, prefix: str = "c") -> list:
    """n profiles; the first `consenting` (default all) allow marketing."""
    results = profiles_ingest(source=source, records=[
        {"external_id": f"{prefix}{i}", "identifiers": {"email": f"{prefix}{i}@example.com"},
         "attributes": {"country": "DE" if i % 2 else "FR"}} for i in range(n)])
    ids = [uuid.UUID(str(r.profile_id)) for r in results]
    for pid in ids[: n if consenting is None else consenting]:
        consent_set(profile_id=pid, purpose="marketing", granted=True)
    return ids


def client_with(*scopes: str) -> APIClient:
    from cdp.api.services.api_keys import api_key_create

    _, plaintext = api_key_create(name="test", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client
