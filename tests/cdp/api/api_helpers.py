"""Helpers shared by the API tests (imported by name: pytest puts this directory on sys.path)."""

from __future__ import annotations

CANARY_EMAIL = "canary.zq7x@example.org"
CANARY = "zq7x-canary-value"


def record(external_id: str, **identifiers) -> dict:
    attributes = identifiers.pop("attributes", {})
    return {"external_id": external_id, "identifiers": identifiers, "attributes": attributes}


def post_profiles(client, source_key: str, *records, **headers):
    return client.post("/api/v1/profiles/batch", {"source": source_key, "records": list(records)}, format="json",
                       headers=headers or None)


def is_problem(response, status: int, code: str | None = None) -> bool:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return True
