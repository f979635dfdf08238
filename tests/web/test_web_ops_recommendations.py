"""/ops/recommendations/: per-run quality charts with threshold alerts, and operators' blocks and
pins (operators only, CSRF-checked, audited)."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from web_helpers import (  # noqa: F401
    _fresh_cache,
    officer,
    officer_client,
    operator,
    operator_client,
    staff_user,
)

from cdp.services.items import items_upsert
from consent.models import AccessLog
from personalization.models import PipelineRun, RecommendationOverride, RunStatus

pytestmark = pytest.mark.django_db

QUALITY = {"k": 10, "coverage": 0.4, "gini": 0.6, "novelty": 3.0, "ild": 0.5, "miscalibration": 0.1,
           "segment_coverage": {"gap": 0.1, "by_segment": {"Loyal": 0.3}}}


def finished_run(quality: dict) -> PipelineRun:
    return PipelineRun.objects.create(status=RunStatus.SUCCEEDED, active=None, finished_at=timezone.now(),
                                      quality=quality, model_version="hybrid-test")


@pytest.fixture
def items():
    items_upsert(items=[{"id": "sku-1", "title": "Trail Shoes", "category": "outdoor"}])


def test_only_operators_open_the_page_and_change_overrides(officer_client, staff_user, items):
    assert Client().get("/ops/recommendations/").status_code == 302
    plain = Client()
    plain.force_login(staff_user("plain", None))
    for client in (officer_client, plain):
        assert client.get("/ops/recommendations/").status_code == 403
        response = client.post("/ops/recommendations/overrides/",
                               {"kind": "block", "item_id": "sku-1", "reason": "Recall"})
        assert response.status_code == 403
    assert not RecommendationOverride.objects.exists()


def test_the_form_needs_the_csrf_token(operator, items):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    page = strict.get("/ops/recommendations/")
    assert b"csrfmiddlewaretoken" in page.content
    response = strict.post("/ops/recommendations/overrides/", {"kind": "block", "item_id": "sku-1", "reason": "R"})
    assert response.status_code == 403 and not RecommendationOverride.objects.exists()


def test_an_operator_pins_and_lifts_with_a_reason_in_the_audit_trail(operator_client, operator, items):
    response = operator_client.post("/ops/recommendations/overrides/", {
        "kind": "pin", "item_id": "sku-1", "segment_name": "Loyal", "reason": "Spring launch"})
    assert response.status_code == 302
    override = RecommendationOverride.objects.get()
    assert (override.kind, override.segment_name, override.created_by) == ("pin", "Loyal", f"staff:{operator.id}")
    entry = AccessLog.objects.get(purpose="recommendation.pin")
    assert entry.actor == f"staff:{operator.id}" and entry.detail["reason"] == "Spring launch"
    page = operator_client.get("/ops/recommendations/").content.decode()
    assert "Trail Shoes" in page and "Spring launch" in page
    assert operator_client.post(f"/ops/recommendations/overrides/{override.id}/lift/").status_code == 302
    assert AccessLog.objects.filter(purpose="recommendation.pin_lifted").count() == 1


def test_an_unknown_item_or_a_missing_reason_is_refused_on_the_page(operator_client, items):
    page = operator_client.post("/ops/recommendations/overrides/", {"kind": "block", "item_id": "nope",
                                                                     "reason": "Recall"})
    assert page.status_code == 200 and "No catalogue item has this id." in page.content.decode()
    page = operator_client.post("/ops/recommendations/overrides/", {"kind": "block", "item_id": "sku-1"})
    assert page.status_code == 200 and not RecommendationOverride.objects.exists()


def test_quality_is_charted_per_run_with_the_thresholds(operator_client):
    assert "No run has measured its lists yet" in operator_client.get("/ops/recommendations/").content.decode()
    finished_run(QUALITY)
    finished_run({**QUALITY, "coverage": 0.42})
    page = operator_client.get("/ops/recommendations/").content.decode()
    assert 'id="recommendation-quality' in page and "coverage floor" in page and "Gini ceiling" in page
    assert 'role="alert"' not in page
    assert "0.420" in page


def test_a_drifting_run_raises_a_visible_alert_on_the_pages(operator_client, settings):
    settings.TESSERA_QUALITY_MAX_GINI = 0.8
    finished_run(QUALITY)
    finished_run({**QUALITY, "gini": 0.85, "coverage": 0.2})
    for path in ("/ops/recommendations/", "/ops/"):
        page = operator_client.get(path).content.decode()
        assert 'role="alert"' in page, path
        assert "Gini of exposure 0.850 is above 0.800." in page
        assert "Catalogue coverage moved from 0.400 to 0.200 since the previous run" in page
