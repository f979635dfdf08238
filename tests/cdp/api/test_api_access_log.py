"""Every read endpoint of the API that returns personal data writes its access-log row.

The endpoints are enumerated from the URLconf (every method a view declares a scope for,
GET or any method with a `:read` scope), so a new read endpoint fails
`test_every_read_endpoint_is_classified` until it is listed here either as personal (with
a request that must leave an access-log row naming the person and the key) or as not
personal (with the reason). The rows are written by the selectors and services the views
call (consent.services.access), never by the views.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from campaigns.services.campaigns import campaign_create
from cdp.core.http.scopes import SCOPES
from cdp.services.resolution import profiles_ingest
from consent.models import AccessKind, AccessLog, ConsentEvent
from consent.services import consent_set
from personalization.models import (
    PipelineRun,
    Prediction,
    Recommendation,
    RunStatus,
    Segment,
    Segmentation,
    SegmentMembership,
)

pytestmark = pytest.mark.django_db

EMAIL = "reader-test@example.com"
CAMPAIGN = "reader-test"

NOT_PERSONAL = {
    "GET api/v1/merge-conflicts": "pseudonymous ids, reasons and statuses of refused merges",
    "GET api/v1/changes": "ids and purposes of changes, what webhooks deliver",
    "GET api/v1/webhooks": "the key's own subscriptions",
    "GET api/v1/notices": "notice texts, the same for everyone",
    "GET api/v1/segments": "differentially private releases only",
    "GET api/v1/campaigns/<str:key>": "a campaign's definition and allocation, no person",
    "GET api/v1/campaigns/<str:key>/results": "differentially private releases only",
}


def api_read_routes() -> set[str]:
    """`METHOD route` of every read the API's URLconf serves."""

    def walk(patterns, prefix: str):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern), pattern.callback

    routes = set()
    for route, callback in walk(get_resolver().url_patterns, ""):
        view = getattr(callback, "cls", None)
        if not route.startswith("api/v1/") or view is None:
            continue
        for method, scope in getattr(view, "required_scopes", {}).items():
            if method == "GET" or str(scope).endswith(":read"):
                routes.add(f"{method} {route}")
    return routes


@dataclass
class World:
    profile_id: UUID
    event_id: UUID
    segment_id: UUID


@pytest.fixture
def world(source_factory) -> World:
    """One person with a profile, consents, a recommendation and a segment membership."""
    shop = source_factory("shop")
    [result] = profiles_ingest(source=shop, records=[
        {"external_id": "r1", "identifiers": {"email": EMAIL}, "attributes": {"nickname": "Reader"}}])
    pid = UUID(str(result.profile_id))
    for purpose in ("personalization", "analytics", "marketing"):
        consent_set(profile_id=pid, purpose=purpose, granted=True)
    run = PipelineRun.objects.create(status=RunStatus.SUCCEEDED, model_version="test")
    Recommendation.objects.create(run=run, profile_id=pid, rank=1, item_id="sku-1", title="A thing", score=0.5,
                                  explanation={"text": "Because."}, model_version="test",
                                  created_at=timezone.now() - timedelta(minutes=1))
    Prediction.objects.create(run=run, profile_id=pid, p_alive=0.8, expected_purchases_90d=1.5, expected_value=42,
                              churn_risk="low", explanation={"text": "Usually buys every ~20 days."},
                              model_version="test", created_at=timezone.now())
    segmentation = Segmentation.objects.create(k=1, seed=1, model={})
    segment = Segment.objects.create(segmentation=segmentation, index=0, name="Everyone", centroid={})
    SegmentMembership.objects.create(segmentation=segmentation, segment=segment, profile_id=pid,
                                     r_score=5, f_score=4, m_score=3)
    campaign_create(key=CAMPAIGN, name="Reader test", actor="test", metric={"event": "purchase"},
                    variants=[{"key": "control"}, {"key": "discount"}])
    event = ConsentEvent.objects.filter(profile_id=pid).order_by("seq").first()
    return World(profile_id=pid, event_id=event.id, segment_id=segment.id)


def _dsr_read(client, world: World, capture) -> object:
    with capture(execute=True):
        filed = client.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": EMAIL}}, format="json")
    assert filed.status_code == 202, filed.content
    return client.get(f"/api/v1/dsr/{filed.json()['id']}")


# route → the request that reads the person's data through it
PERSONAL = {
    "GET api/v1/profiles/<str:profile_id>": lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}"),
    "POST api/v1/profiles/lookup": lambda c, w, _: c.post("/api/v1/profiles/lookup", {"email": EMAIL},
                                                          format="json"),
    "GET api/v1/profiles/<str:profile_id>/consents": lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}"
                                                                           "/consents"),
    "GET api/v1/profiles/<str:profile_id>/consent-receipts/<str:event_id>":
        lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}/consent-receipts/{w.event_id}"),
    "GET api/v1/consents/events": lambda c, w, _: c.get("/api/v1/consents/events", {"profile": w.profile_id}),
    "GET api/v1/consents/export": lambda c, w, _: c.get("/api/v1/consents/export"),
    "GET api/v1/dsr/<str:request_id>": _dsr_read,
    "GET api/v1/profiles/<str:profile_id>/recommendations":
        lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}/recommendations"),
    "GET api/v1/profiles/<str:profile_id>/predictions":
        lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}/predictions"),
    "GET api/v1/profiles/<str:profile_id>/campaigns/<str:key>":
        lambda c, w, _: c.get(f"/api/v1/profiles/{w.profile_id}/campaigns/{CAMPAIGN}"),
    "POST api/v1/campaigns/<str:key>/assignments":
        lambda c, w, _: c.post(f"/api/v1/campaigns/{CAMPAIGN}/assignments", {"profile_ids": [str(w.profile_id)]},
                               format="json"),
    "GET api/v1/events": lambda c, w, _: c.get("/api/v1/events", {"profile_id": str(w.profile_id)}),
    "GET api/v1/segments/<str:segment_id>/members":
        lambda c, w, _: c.get(f"/api/v1/segments/{w.segment_id}/members"),
}
# Exports of everyone's consent name no one person: their row is an operator action.
WHOLE_LEDGER = {"GET api/v1/consents/export"}


def test_every_read_endpoint_is_classified():
    routes = api_read_routes()
    unclassified = routes - set(PERSONAL) - set(NOT_PERSONAL)
    assert not unclassified, f"classify these read endpoints (personal: add a request to PERSONAL): {unclassified}"
    assert not set(PERSONAL) & set(NOT_PERSONAL)
    assert set(PERSONAL) | set(NOT_PERSONAL) == routes, "a classified route no longer exists"


@pytest.mark.parametrize("route", sorted(PERSONAL))
def test_each_personal_read_writes_its_access_log_row(route, world, make_key, django_capture_on_commit_callbacks):
    key, plaintext = make_key(*SCOPES)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    before = set(AccessLog.objects.values_list("id", flat=True))
    response = PERSONAL[route](client, world, django_capture_on_commit_callbacks)
    assert response.status_code == 200, (route, response.status_code, getattr(response, "content", b"")[:300])
    if hasattr(response, "streaming_content"):
        b"".join(response.streaming_content)
    new = AccessLog.objects.exclude(id__in=before)
    if route in WHOLE_LEDGER:
        rows = new.filter(kind=AccessKind.OPERATOR_ACTION, purpose="consent_export")
    else:
        rows = new.filter(kind=AccessKind.READ, profile_id=world.profile_id)
    assert rows.exists(), f"{route} returned personal data without an access-log row"
    assert {row.actor for row in rows} == {f"api_key:{key.prefix}"}
    for row in rows.filter(kind=AccessKind.READ):
        assert row.fields and EMAIL not in str(row.fields) and "Reader" not in str(row.detail)
