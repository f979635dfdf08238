"""GET /api/v1/profiles/{id}/recommendations, /api/v1/segments and segment members."""

from __future__ import annotations

import uuid

import pytest
from personalization_helpers import fake_model_fit, shop_population
from rest_framework.test import APIClient

from cdp.core.http.scopes import SCOPES
from consent.services import consent_set
from personalization.models import DpRelease, Segment
from personalization.services import pipeline

pytestmark = pytest.mark.django_db


def client_with(*scopes: str) -> APIClient:
    from cdp.api.services.api_keys import api_key_create

    _, plaintext = api_key_create(name="test", scopes=list(scopes or SCOPES))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


@pytest.fixture
def shop(db, monkeypatch):
    monkeypatch.setattr("personalization.services.recommendations.model_fit", fake_model_fit)
    return shop_population(people=40)


@pytest.fixture
def ran(shop):
    run = pipeline.pipeline_run_create(params={"chunk_size": 15, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    return shop


def url(profile_id) -> str:
    return f"/api/v1/profiles/{profile_id}/recommendations"


# --- recommendations --------------------------------------------------------------------------------


def test_recommendations_with_explanations(ran):
    person = sorted(ran.personalization)[0]
    response = client_with("recommendations:read").get(url(person))
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["model_version"] == "fake-1" and body["generated_at"]
    recs = body["recommendations"]
    assert [r["rank"] for r in recs] == list(range(1, len(recs) + 1)) and len(recs) == 10
    assert set(recs[0]) == {"item_id", "title", "score", "rank", "explanation"}
    assert body["as_of"] is not None  # the newest event the list reflects
    explanation = recs[0]["explanation"]
    assert {"text", "parts", "because_of", "matched_attributes", "segment", "fallback", "data_sources",
            "purposes"} <= set(explanation)
    limited = client_with("recommendations:read").get(url(person) + "?limit=3").json()
    assert [r["item_id"] for r in limited["recommendations"]] == [r["item_id"] for r in recs[:3]]


def test_no_recommendations_yet_is_an_empty_list(shop):
    person = sorted(shop.personalization)[0]
    body = client_with("recommendations:read").get(url(person)).json()
    assert body == {"recommendations": [], "generated_at": None, "model_version": None, "as_of": None}


def test_without_personalization_consent_it_is_403_consent_required(ran):
    person = sorted(ran.personalization)[0]
    consent_set(profile_id=person, purpose="personalization", granted=False)
    problem(client_with("recommendations:read").get(url(person)), 403, "consent_required")
    never = (set(ran.profile_ids) - ran.personalization).pop()
    problem(client_with("recommendations:read").get(url(never)), 403, "consent_required")


def test_unknown_malformed_and_erased_profiles(ran):
    client = client_with("recommendations:read")
    problem(client.get(url(uuid.uuid4())), 404, "not_found")
    problem(client.get(url("not-a-uuid")), 404, "not_found")
    problem(client.get(url(sorted(ran.personalization)[0]) + "?limit=0"), 400, "invalid_limit")
    from cdp.services.erasure import profile_erase

    person = sorted(ran.personalization)[0]
    profile_erase(profile_id=person)
    problem(client.get(url(person)), 410, "erased")


def test_scopes(ran):
    person = sorted(ran.personalization)[0]
    body = problem(client_with("segments:read").get(url(person)), 403, "missing_scope")
    assert body["missing_scope"] == "recommendations:read"
    problem(client_with("recommendations:read").get("/api/v1/segments"), 403, "missing_scope")
    problem(APIClient().get("/api/v1/segments"), 401, "unauthenticated")


# --- segments ------------------------------------------------------------------------------------------


def test_segments_carry_only_dp_statistics(ran):
    body = client_with("segments:read").get("/api/v1/segments").json()
    assert body["next_cursor"] is None and body["results"]
    for segment in body["results"]:
        assert set(segment) == {"id", "name", "segmentation", "statistics"}
        stats = segment["statistics"]
        assert set(stats) == {"size", "total_spend", "average_spend"}
        for stat in stats.values():
            assert {"value", "error_95", "epsilon", "mechanism", "released_at"} <= set(stat)
        assert stats["size"]["epsilon"] > 0 and stats["average_spend"]["epsilon"] == 0
        raw = Segment.objects.get(id=segment["id"])
        assert "size" not in segment and "centroid" not in segment  # raw figures never leave
        release = DpRelease.objects.get(statistic="segment_sizes")
        assert stats["size"]["value"] == release.values[str(raw.id)]


def test_segments_paginate(ran):
    client = client_with("segments:read")
    first = client.get("/api/v1/segments?limit=1").json()
    assert len(first["results"]) == 1 and first["next_cursor"]
    second = client.get(f"/api/v1/segments?limit=1&cursor={first['next_cursor']}").json()
    assert second["results"][0]["id"] != first["results"][0]["id"]


def test_segment_members_only_allowed_for_the_purpose(ran):
    client = client_with("segments:members")
    segment = Segment.objects.order_by("index").first()
    marketing = sorted(ran.analytics)[::2]
    for pid in marketing:
        consent_set(profile_id=pid, purpose="marketing", granted=True)
    members, cursor = [], None
    while True:
        page = client.get(f"/api/v1/segments/{segment.id}/members?purpose=marketing&limit=2"
                          + (f"&cursor={cursor}" if cursor else "")).json()
        members += page["results"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    ids = [uuid.UUID(m["profile_id"]) for m in members]
    expected = set(segment.memberships.values_list("profile_id", flat=True)) & set(marketing)
    assert set(ids) == expected and len(ids) == len(expected) and ids == sorted(ids)
    assert all(len(m["rfm_score"]) == 3 for m in members)


def test_segment_members_default_to_marketing_and_need_a_known_purpose_and_segment(ran):
    client = client_with("segments:members")
    segment = Segment.objects.filter(memberships__isnull=False).first()
    for pid in segment.memberships.values_list("profile_id", flat=True)[:2]:
        consent_set(profile_id=pid, purpose="marketing", granted=True)
    default = client.get(f"/api/v1/segments/{segment.id}/members").json()["results"]
    assert default == client.get(f"/api/v1/segments/{segment.id}/members?purpose=marketing").json()["results"]
    assert len(default) == 2
    problem(client.get(f"/api/v1/segments/{segment.id}/members?purpose=spam"), 400, "unknown_purpose")
    problem(client.get(f"/api/v1/segments/{uuid.uuid4()}/members?purpose=marketing"), 404, "not_found")


def test_the_openapi_schema_documents_the_endpoints(db):
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/profiles/{profile_id}/recommendations" in paths
    assert "/api/v1/segments" in paths and "/api/v1/segments/{segment_id}/members" in paths


def test_a_merged_away_profile_names_the_survivor(ran):
    from cdp.models import Profile

    absorbed, survivor = sorted(ran.personalization)[:2]
    Profile.objects.filter(id=absorbed).update(status="merged", merged_into_id=survivor)
    body = problem(client_with("recommendations:read").get(url(absorbed)), 409, "merged")
    assert body["merged_into"] == str(survivor)


def test_the_one_query_read_agrees_with_the_orm_read(ran):
    """profile_with_recommendations (one plain SQL query on PostgreSQL) returns exactly what
    recommendations_for_profile does, for every person, limit and a second run."""
    from personalization.selectors import profile_with_recommendations, recommendations_for_profile

    run = pipeline.pipeline_run_create(params={"chunk_size": 15, "k": 3})
    pipeline.pipeline_run_sync(run_id=run.id)
    people = sorted(ran.personalization)[:5] + [uuid.uuid4()]
    for person in people:
        for limit in (1, 3, 100):
            profile, body = profile_with_recommendations(profile_id=person, limit=limit)
            if person == people[-1]:
                assert profile is None
                continue
            assert profile == {"status": "active", "merged_into_id": None}
            expected = recommendations_for_profile(profile_id=person, limit=limit)
            assert body == expected and body["recommendations"]
            assert len(body["recommendations"]) == min(limit, 10)


def test_segment_member_pages_are_full_and_the_last_one_is_never_empty(ran):
    """Members are filtered by consent outside the database; the one pager still fills
    every page, and hands out no cursor to an empty page (the hand-rolled pager did when
    the segment's last members were not listed)."""
    client = client_with("segments:members")
    segment = max(Segment.objects.all(), key=lambda s: s.memberships.count())
    ids = sorted(segment.memberships.values_list("profile_id", flat=True))
    allowed = ids[:-1:2]  # never the last member
    for pid in allowed:
        consent_set(profile_id=pid, purpose="marketing", granted=True)
    expected = [pid for pid in allowed if pid in ran.analytics]
    pages, cursor = [], None
    while True:
        page = client.get(f"/api/v1/segments/{segment.id}/members?limit=2"
                          + (f"&cursor={cursor}" if cursor else "")).json()
        pages.append([uuid.UUID(m["profile_id"]) for m in page["results"]])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [pid for page in pages for pid in page] == expected
    assert all(len(page) == 2 for page in pages[:-1]) and (pages[-1] or not expected)


@pytest.mark.parametrize("path", ["/api/v1/segments", "/api/v1/segments/{segment}/members"])
@pytest.mark.parametrize("query, code", [("cursor=bm9wZQ", "invalid_cursor"), ("cursor=WyJ4Il0", "invalid_cursor"),
                                         ("limit=0", "invalid_limit")])
def test_bad_cursors_and_limits_answer_the_pagers_codes(ran, path, query, code):
    segment = Segment.objects.first()
    client = client_with("segments:read", "segments:members")
    problem(client.get(path.format(segment=segment.id) + "?" + query), 400, code)
