"""Real-time personalization through a real worker on PostgreSQL: a Segment purchase is
noted after the ingestion commits, drained by the `realtime` queue's worker after the
coalescing window, and the item drops out of the list (features and segment move too)."""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import pytest
from rest_framework.test import APIClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "personalization"))
from personalization_helpers import shop_population  # noqa: E402

from cdp.services.sources import source_create  # noqa: E402
from personalization.models import (  # noqa: E402
    ProfileFeatures,
    Recommendation,
    RefreshPending,
    SegmentMembership,
)
from personalization.services import pipeline  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.broker]


def _items(person) -> list[str]:
    return list(Recommendation.objects.filter(profile_id=person).order_by("rank").values_list("item_id", flat=True))


def test_a_segment_purchase_is_rescored_by_the_worker(celery_worker):
    _, write_key = source_create(key="shop", name="Shop", kind="first_party", trust=80)
    served = shop_population(people=40, source_key="shop")
    run = pipeline.pipeline_run_create(params={"chunk_size": 15, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    index = next(i for i, pid in enumerate(served.profile_ids)
                 if pid in served.personalization and pid in served.analytics and i % 7)
    person = served.profile_ids[index]
    bought = _items(person)[0]
    orders_before = ProfileFeatures.objects.get(run_id=run.id, profile_id=person).frequency
    worker = celery_worker()

    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    response = APIClient().post("/v1/track", {
        "userId": f"u{index}", "event": "Order Completed", "messageId": "order-worker-1",
        "properties": {"order_id": "o-w-1", "products": [{"product_id": bought, "price": 12}]}},
        format="json", HTTP_AUTHORIZATION=auth)
    assert response.status_code == 200, response.content[:300]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and bought in _items(person):
        time.sleep(0.2)
    items = _items(person)
    assert items and bought not in items
    explained = Recommendation.objects.filter(profile_id=person).values_list("explanation", flat=True)
    assert any(b["item_id"] == bought for e in explained for b in e["because_of"])
    # The same refresh moved the features and kept the person in a segment of the run.
    assert ProfileFeatures.objects.get(run_id=run.id, profile_id=person).frequency == orders_before + 1
    assert SegmentMembership.objects.filter(segmentation__run_id=run.id, profile_id=person).exists()
    assert not RefreshPending.objects.exists(), "the drain took the person"
    assert worker.poll() is None
