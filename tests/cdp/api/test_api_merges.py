"""Merge conflicts (cursor-paginated) and undoing merges over HTTP."""

from __future__ import annotations

import pytest
from api_helpers import is_problem, post_profiles, record

from cdp.models import ConflictStatus, Merge, MergeConflict, Profile, ProfileStatus

pytestmark = pytest.mark.django_db


def make_conflicts(count: int) -> list[MergeConflict]:
    profiles = Profile.objects.bulk_create([Profile() for _ in range(2)])
    return [MergeConflict.objects.create(profile=profiles[0], other_profiles=[str(profiles[1].id)],
                                         reason="conflicting_source_ids") for _ in range(count)]


def test_merge_conflicts_are_paginated_with_a_cursor(api_client):
    conflicts = make_conflicts(5)
    MergeConflict.objects.filter(pk=conflicts[0].pk).update(status=ConflictStatus.RESOLVED)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = api_client.get("/api/v1/merge-conflicts", params).json()
        pages += 1
        seen += [c["id"] for c in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 2 and seen == [str(c.id) for c in conflicts[1:]]
    first = api_client.get("/api/v1/merge-conflicts", {"status": "all"}).json()["results"][0]
    assert set(first) == {"id", "profile_id", "other_profile_ids", "record_id", "reason", "status", "created_at",
                          "resolved_at"}
    assert first["status"] == "resolved"


def test_the_default_page_holds_100(api_client):
    make_conflicts(101)
    body = api_client.get("/api/v1/merge-conflicts").json()
    assert len(body["results"]) == 100 and body["next_cursor"]
    rest = api_client.get("/api/v1/merge-conflicts", {"cursor": body["next_cursor"]}).json()
    assert len(rest["results"]) == 1 and rest["next_cursor"] is None
    assert len(api_client.get("/api/v1/merge-conflicts", {"limit": 5000}).json()["results"]) == 101


@pytest.mark.parametrize("params, code", [
    ({"cursor": "not base64!"}, "invalid_cursor"),
    ({"cursor": "WyJ4Il0"}, "invalid_cursor"),  # ["x"]: wrong shape
    ({"cursor": "WyJub3QgYSBkYXRlIiwgIngiXQ"}, "invalid_cursor"),  # ["not a date", "x"]
    ({"limit": "0"}, "invalid_limit"),
    ({"limit": "ten"}, "invalid_limit"),
    ({"status": "maybe"}, "invalid_status"),
])
def test_bad_page_parameters_are_400(api_client, params, code):
    assert is_problem(api_client.get("/api/v1/merge-conflicts", params), 400, code)


def test_a_merge_is_undone_once(api_client, shop):
    post_profiles(api_client, "shop", record("o-1", email="a@example.com"))
    post_profiles(api_client, "shop", record("o-2", phone="+14155550132"))
    post_profiles(api_client, "shop", record("o-3", email="a@example.com", phone="+14155550132"))
    merge = Merge.objects.get()
    response = api_client.post(f"/api/v1/merges/{merge.id}/unmerge")
    assert response.status_code == 200
    assert response.json() == {"id": str(merge.id), "status": "undone", "profile_id": str(merge.survivor_id),
                               "restored_profile_id": str(merge.absorbed_id)}
    assert Profile.objects.get(pk=merge.absorbed_id).status == ProfileStatus.ACTIVE
    assert is_problem(api_client.post(f"/api/v1/merges/{merge.id}/unmerge"), 409, "already_undone")


@pytest.mark.parametrize("merge_id", ["3f1c0a7e-0000-4000-8000-000000000000", "nope"])
def test_unmerging_an_unknown_merge_is_404(api_client, merge_id):
    assert is_problem(api_client.post(f"/api/v1/merges/{merge_id}/unmerge"), 404)


def test_a_conflict_result_names_its_reason_and_record(api_client, source_factory):
    from api_helpers import post_profiles, record

    source_factory("crm")
    post_profiles(api_client, "crm", record("c-1", crm_id="C-1", email="same@example.com"))
    response = post_profiles(api_client, "crm", record("c-2", crm_id="C-2", email="same@example.com"),
                             record("c-3", crm_id="C-3", email="other@example.com"))
    conflict, created = response.json()["results"]
    assert created["status"] == "created" and "reason" not in created
    assert conflict["status"] == "conflict" and conflict["reason"] == "conflicting_source_ids"
    [listed] = api_client.get("/api/v1/merge-conflicts").json()["results"]
    assert (conflict["record_id"], conflict["conflict_id"]) == (listed["record_id"], listed["id"])
