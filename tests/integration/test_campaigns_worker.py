"""A campaign end to end through the API and a real worker on PostgreSQL: create, assign,
ingest outcomes (events batch and Segment's Experiment Viewed), recompute the bandit's weights
and release results through beat's tasks, read them, stop."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "campaigns"))
from campaign_helpers import client_with, people  # noqa: E402

from campaigns.models import AllocationSnapshot, Assignment, Campaign  # noqa: E402
from campaigns.tasks import campaign_results_release_all, campaign_weights_recompute_all  # noqa: E402
from personalization.models import DpRelease  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def _wait(condition, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    pytest.fail("the worker did not finish in time")


def test_campaign_end_to_end_through_a_worker(celery_worker, source_factory, settings):
    settings.TESSERA_API_RATE = "10000/s"  # 80 assignments in a burst
    from cdp.models import Event
    from cdp.services.sources import source_create

    shop = source_factory("shop")
    ids = people(shop, 80)
    client = client_with("campaigns:read", "campaigns:write", "events:write")
    created = client.post("/api/v1/campaigns", {
        "key": "e2e", "name": "End to end", "variants": [{"key": "a"}, {"key": "b"}], "allocation": "bandit",
        "warmup": 10, "min_weight": 0.05, "metric": {"event": "Signed Up", "kind": "conversion"}}, format="json")
    assert created.status_code == 201, created.content
    answers = {pid: client.get(f"/api/v1/profiles/{pid}/campaigns/e2e").json() for pid in ids}
    assert all(a["in_experiment"] and a["propensity"] == 0.5 for a in answers.values())

    # Outcomes as ordinary events: b converts far more often.
    events = [{"profile_id": str(pid), "type": "custom", "name": "Signed Up", "message_id": f"m{i}"}
              for i, (pid, a) in enumerate(answers.items()) if (a["variant"] == "b" or i % 10 == 0)]
    stored = client.post("/api/v1/events/batch", {"source": "shop", "events": events}, format="json")
    assert {r["status"] for r in stored.json()["results"]} == {"accepted"}
    # An exposure through Segment's track call, stored as an ordinary event naming the campaign.
    _, write_key = source_create(key="web", name="Web", kind="first_party", trust=40)
    auth = base64.b64encode(f"{write_key}:".encode()).decode()
    tracked = APIClient().post("/v1/track", {"userId": "u1", "event": "Experiment Viewed",
                                        "properties": {"experiment_id": "e2e", "variation_id": "a"}},
                          format="json", HTTP_AUTHORIZATION=f"Basic {auth}")
    assert tracked.status_code == 200, tracked.content
    assert Event.objects.filter(name="Experiment Viewed", item_id="e2e").count() == 1

    worker = celery_worker()
    campaign_weights_recompute_all.delay()  # what beat runs: fans out one task per bandit
    _wait(lambda: AllocationSnapshot.objects.filter(campaign__key="e2e", reason="recomputed").exists())
    weights = Campaign.objects.get(key="e2e").weights
    assert weights[1] > weights[0]
    later = client.get(f"/api/v1/profiles/{ids[0]}/campaigns/e2e").json()
    assert later["variant"] == answers[ids[0]]["variant"]  # sticky across the recompute

    campaign_results_release_all.delay()
    _wait(lambda: DpRelease.objects.filter(query_key__startswith="campaign:").exists())
    results = client.get("/api/v1/campaigns/e2e/results").json()
    assert [a["variant"] for a in results["arms"]] == ["a", "b"] and results["updated_at"]
    assert results["privacy"]["epsilon"] > 0

    assert client.post("/api/v1/campaigns/e2e/stop").json()["status"] == "stopped"
    assert client.get(f"/api/v1/profiles/{ids[0]}/campaigns/e2e").json()["in_experiment"] is False
    assert Assignment.objects.filter(campaign__key="e2e").count() == 80
    assert worker.poll() is None
