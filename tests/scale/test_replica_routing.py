"""Reads against a real streaming replica (a private primary and standby, started and
stopped here): lag-tolerant reads are served by the standby, and a client that sends
back the position of its last write never reads anything older than that write."""

from __future__ import annotations

import pytest
import replication
from harness import Unavailable, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    try:
        product, standby, cleanup = replication.replicated_product()
    except Unavailable as missing:
        pytest.skip(f"the replica tests need {missing}")
    # Lag is bounded by positions here, not by time: a paused standby still serves.
    product.env["TESSERA_REPLICA_MAX_LAG_SECONDS"] = "3600"
    try:
        product.serve(workers=1)
        yield product, standby
    finally:
        standby.replay_resume()
        cleanup()


def _write(product, number: int, tier: int) -> tuple[str, str]:
    """Create or update person `number`; returns (profile id, Tessera-Position)."""
    status, headers, body = product.call("POST", "/api/v1/profiles/batch", {"source": "crm", "records": [
        {"external_id": f"rep-{number}", "identifiers": {"email": f"rep.{number}@example.org"},
         "attributes": {"tier": tier}}]})
    assert status == 200, body
    assert body["results"][0]["status"] in ("created", "updated", "unchanged"), body
    return body["results"][0]["profile_id"], headers["tessera-position"]


def _tier(product, profile_id: str, read_after: str | None):
    headers = {"Tessera-Read-After": read_after} if read_after else {}
    status, _, body = product.call("GET", f"/api/v1/profiles/{profile_id}", headers=headers)
    return None if status == 404 else body["attributes"]["tier"]["value"]


def _caught_up(standby, position: str) -> bool:
    replayed = standby.replayed()
    return replayed is not None and _lsn(replayed) >= _lsn(position)


def _lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def test_the_standby_serves_lag_tolerant_reads_and_a_position_is_never_read_stale(cluster):
    product, standby = cluster
    first, position = _write(product, 1, tier=1)
    wait_until(lambda: _caught_up(standby, position), 30, "the standby did not replay the first write")
    assert _tier(product, first, None) == 1

    standby.replay_pause()
    second, second_position = _write(product, 2, tier=1)
    _, update_position = _write(product, 1, tier=2)
    # Without a position the paused standby answers: it has neither write.
    assert _tier(product, second, None) is None
    assert _tier(product, first, None) == 1
    status, _, body = product.call("POST", "/api/v1/profiles/lookup", {"email": "rep.2@example.org"})
    assert status == 200 and body["results"] == []
    # With its position, the client reads its own writes (from the primary).
    assert _tier(product, second, second_position) == 1
    assert _tier(product, first, update_position) == 2
    status, _, body = product.call("POST", "/api/v1/profiles/lookup", {"email": "rep.2@example.org"},
                                   headers={"Tessera-Read-After": second_position})
    assert status == 200 and [p["id"] for p in body["results"]] == [second]

    standby.replay_resume()
    wait_until(lambda: _caught_up(standby, update_position), 30, "the standby did not catch up")
    assert _tier(product, first, None) == 2  # the standby has it now

    # Writes and reads back to back, replay running (and paused half the time): every
    # read with the last write's position sees that write.
    for number in range(3, 23):
        if number % 2:
            standby.replay_pause()
        tier = number * 10
        _, position = _write(product, 1, tier=tier)
        assert _tier(product, first, position) == tier
        standby.replay_resume()


def test_a_malformed_position_is_a_problem(cluster):
    product, _ = cluster
    status, headers, body = product.call("GET", "/api/v1/changes", headers={"Tessera-Read-After": "yesterday"})
    assert status == 400
    assert headers["content-type"].startswith("application/problem+json")
    assert body["code"] == "invalid_read_after"
