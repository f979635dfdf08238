"""Issue #14, findings 2 and 3: API keys see only their own.

Every attack test here was seen to fail on the code before the fix. The attacker holds a
real API key made through the service: another integrator's key with `webhooks:manage`,
or a key bound to the `web` source trying to reach people only `crm` ever wrote.
"""

from __future__ import annotations

import json
import uuid

import pytest
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create
from cdp.core.http.models import ApiKey
from cdp.models import Event, Merge, MergeConflict
from cdp.services.resolution import profiles_ingest
from cdp.services.sources import source_create
from consent.models import ConsentEvent
from consent.services import consent_set
from personalization.models import Segment, Segmentation, SegmentMembership

pytestmark = pytest.mark.django_db

PEOPLE_SCOPES = ["profiles:read", "profiles:write", "consent:read", "consent:write", "dsr:read", "dsr:write",
                 "recommendations:read"]
MANAGE = "webhooks:manage"


def client_for(scopes, *, source=None, extra_scopes=()) -> APIClient:
    """A client with a real key. `extra_scopes` are written to the row as stored, so a test
    can hold a scope the code under test may not know yet (dsr:export)."""
    key, plaintext = api_key_create(name="attacker or owner", scopes=list(scopes),
                                    source_key=source.key if source else None)
    if extra_scopes:
        ApiKey.objects.filter(pk=key.pk).update(scopes=[*key.scopes, *extra_scopes])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    client.key_id = key.id
    return client


def ingest(source, external_id: str, **identifiers) -> uuid.UUID:
    attributes = identifiers.pop("attributes", {})
    [result] = profiles_ingest(source=source, records=[
        {"external_id": external_id, "identifiers": identifiers, "attributes": attributes}])
    assert result.profile_id, result
    return uuid.UUID(result.profile_id)


@pytest.fixture
def crm():
    return source_create(key="crm", name="CRM", kind="first_party", trust=80)[0]


@pytest.fixture
def web():
    return source_create(key="web", name="Web", kind="first_party", trust=40)[0]


@pytest.fixture
def victim(crm):
    """A person only the CRM ever wrote."""
    return ingest(crm, "crm-victim", email="victim@example.com", attributes={"first_name": "Vera"})


def not_found_body(client, path: str) -> dict:
    """The body an id nobody has gets: a stranger must get exactly this."""
    response = client.get(path)
    assert response.status_code == 404, response.content[:300]
    return response.json()


# --- finding 2: webhook subscriptions have an owner -------------------------------------------------------------


def _subscribe(client, url="https://hooks.example.com/owner") -> dict:
    response = client.post("/api/v1/webhooks", {"url": url, "events": ["consent.changed"]}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_another_key_cannot_list_a_webhook_subscription():
    owner, other = client_for([MANAGE]), client_for([MANAGE])
    mine = _subscribe(owner)
    theirs = _subscribe(other, url="https://hooks.example.com/other")
    assert [w["id"] for w in other.get("/api/v1/webhooks").json()["results"]] == [theirs["id"]]
    assert [w["id"] for w in owner.get("/api/v1/webhooks").json()["results"]] == [mine["id"]]


def test_another_key_cannot_rotate_a_webhook_secret():
    owner, other = client_for([MANAGE]), client_for([MANAGE])
    webhook = _subscribe(owner)
    response = other.post(f"/api/v1/webhooks/{webhook['id']}/rotate-secret", {}, format="json")
    unknown = other.post(f"/api/v1/webhooks/{uuid.uuid4()}/rotate-secret", {}, format="json")
    assert response.status_code == 404 and "secret" not in response.json()
    assert {k: v for k, v in response.json().items() if k != "instance"} == \
        {k: v for k, v in unknown.json().items() if k != "instance"}
    assert owner.post(f"/api/v1/webhooks/{webhook['id']}/rotate-secret", {}, format="json").status_code == 200


def test_another_key_cannot_delete_a_webhook_subscription():
    owner, other = client_for([MANAGE]), client_for([MANAGE])
    webhook = _subscribe(owner)
    assert other.delete(f"/api/v1/webhooks/{webhook['id']}").status_code == 404
    assert [w["id"] for w in owner.get("/api/v1/webhooks").json()["results"]] == [webhook["id"]]
    assert owner.delete(f"/api/v1/webhooks/{webhook['id']}").status_code == 204


def test_a_key_bound_to_the_same_source_cannot_manage_another_keys_webhook(web):
    owner, sibling = client_for([MANAGE], source=web), client_for([MANAGE], source=web)
    webhook = _subscribe(owner)
    assert sibling.get("/api/v1/webhooks").json()["results"] == []
    assert sibling.delete(f"/api/v1/webhooks/{webhook['id']}").status_code == 404


# --- finding 3: a key bound to a source reads only the people that source contributed ------------------------


def test_web_bound_key_cannot_read_a_crm_only_profile(web, victim):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    response = attacker.get(f"/api/v1/profiles/{victim}")
    assert response.status_code == 404
    assert "victim@example.com" not in response.content.decode()


def test_web_bound_key_gets_the_unknown_id_answer_for_a_crm_only_profile(web, victim):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    stranger = attacker.get(f"/api/v1/profiles/{victim}").json()
    nobody = not_found_body(attacker, f"/api/v1/profiles/{uuid.uuid4()}")
    stranger.pop("instance", None), nobody.pop("instance", None)
    assert stranger == nobody


def test_web_bound_key_cannot_find_a_crm_only_person_by_lookup(web, victim):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    response = attacker.post("/api/v1/profiles/lookup", {"email": "victim@example.com"}, format="json")
    assert response.status_code == 200 and response.json() == {"results": []}


def test_web_bound_key_cannot_record_consent_for_a_crm_only_profile(web, victim):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    response = attacker.put(f"/api/v1/profiles/{victim}/consents", {
        "channel": "api", "consents": [{"purpose": "marketing", "granted": True}]}, format="json")
    assert response.status_code == 404
    assert not ConsentEvent.objects.filter(profile_id=victim).exists()


def test_web_bound_key_cannot_record_consent_for_a_crm_only_person_in_a_batch(web, victim):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    response = attacker.post("/api/v1/consents/batch", {"channel": "api", "records": [
        {"profile_id": str(victim), "purpose": "marketing", "granted": True},
        {"profile": {"email": "victim@example.com"}, "purpose": "analytics", "granted": True},
        {"profile_id": str(uuid.uuid4()), "purpose": "marketing", "granted": True},
    ]}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["unknown_profile"] * 3
    assert all(r["profile_id"] is None for r in results)
    assert not ConsentEvent.objects.filter(profile_id=victim).exists()


def test_web_bound_key_cannot_read_consents_receipts_or_log_notices_of_a_crm_only_profile(web, victim):
    consent_set(profile_id=victim, purpose="marketing", granted=True)
    event = ConsentEvent.objects.get(profile_id=victim, purpose="marketing")
    attacker = client_for(PEOPLE_SCOPES, source=web)
    assert attacker.get(f"/api/v1/profiles/{victim}/consents").status_code == 404
    assert attacker.get(f"/api/v1/profiles/{victim}/consent-receipts/{event.id}").status_code == 404
    served = attacker.post(f"/api/v1/profiles/{victim}/notices-served", {
        "channel": "api", "notices": [{"purpose": "marketing"}]}, format="json")
    assert served.status_code == 404


def test_web_bound_key_cannot_read_recommendations_of_a_crm_only_profile(web, victim):
    consent_set(profile_id=victim, purpose="personalization", granted=True)
    attacker = client_for(PEOPLE_SCOPES, source=web)
    assert attacker.get(f"/api/v1/profiles/{victim}/recommendations").status_code == 404


def test_web_bound_key_cannot_undo_a_merge_of_crm_only_people(crm, web):
    ingest(crm, "m-1", email="merged@example.com")
    ingest(crm, "m-2", phone="+442079460018")
    ingest(crm, "m-3", email="merged@example.com", phone="+442079460018")
    merge = Merge.objects.get()
    attacker = client_for(PEOPLE_SCOPES, source=web)
    assert attacker.post(f"/api/v1/merges/{merge.id}/unmerge", {}, format="json").status_code == 404
    merge.refresh_from_db()
    assert merge.undone_at is None


def test_web_bound_key_cannot_file_an_access_dsr_for_a_crm_only_person_and_download_it(
        web, victim, django_capture_on_commit_callbacks):
    attacker = client_for(PEOPLE_SCOPES, source=web, extra_scopes=["dsr:export"])
    with django_capture_on_commit_callbacks(execute=True):
        filed = attacker.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "victim@example.com"}},
                              format="json")
    assert filed.status_code == 202
    detail = attacker.get(f"/api/v1/dsr/{filed.json()['id']}")
    assert detail.status_code == 200
    assert detail.json()["status"] == "completed"
    # The same answer as for a person nobody knows: no export, no sign the person exists.
    assert detail.json()["result"] == {"found": False}
    assert "victim@example.com" not in detail.content.decode() and "Vera" not in detail.content.decode()


def test_web_bound_key_cannot_erase_a_crm_only_person(web, victim, django_capture_on_commit_callbacks):
    attacker = client_for(PEOPLE_SCOPES, source=web)
    with django_capture_on_commit_callbacks(execute=True):
        filed = attacker.post("/api/v1/dsr", {"type": "erasure", "identifiers": {"email": "victim@example.com"}},
                              format="json")
    assert attacker.get(f"/api/v1/dsr/{filed.json()['id']}").json()["result"] == {"found": False}
    crm_key = client_for(PEOPLE_SCOPES)
    assert crm_key.get(f"/api/v1/profiles/{victim}").status_code == 200


def test_another_key_cannot_read_a_dsr(victim, django_capture_on_commit_callbacks):
    filer = client_for(PEOPLE_SCOPES, extra_scopes=["dsr:export"])
    other = client_for(PEOPLE_SCOPES, extra_scopes=["dsr:export"])
    with django_capture_on_commit_callbacks(execute=True):
        filed = filer.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "victim@example.com"}},
                           format="json").json()
    response = other.get(f"/api/v1/dsr/{filed['id']}")
    assert response.status_code == 404
    assert "victim@example.com" not in response.content.decode()
    unknown = other.get(f"/api/v1/dsr/{uuid.uuid4()}").json()
    body = response.json()
    body.pop("instance", None), unknown.pop("instance", None)
    assert body == unknown
    assert filer.get(f"/api/v1/dsr/{filed['id']}").json()["result"]["profile_id"] == str(victim)


def test_an_access_export_needs_the_dsr_export_scope(victim, django_capture_on_commit_callbacks):
    client = client_for(PEOPLE_SCOPES)
    with django_capture_on_commit_callbacks(execute=True):
        access = client.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "victim@example.com"}},
                             format="json").json()
        portability = client.post("/api/v1/dsr", {"type": "portability",
                                                  "identifiers": {"email": "victim@example.com"}},
                                  format="json").json()
    for filed in (access, portability):
        body = client.get(f"/api/v1/dsr/{filed['id']}").json()
        assert body["status"] == "completed" and "result" not in body
        assert "victim@example.com" not in json.dumps(body)


# --- the positive side: own people stay visible, merges carry visibility, unbound keys unchanged ---------------


def test_web_bound_key_still_sees_and_serves_its_own_people(web, victim, django_capture_on_commit_callbacks):
    own = ingest(web, "w-1", email="visitor@example.com")
    client = client_for(PEOPLE_SCOPES, source=web, extra_scopes=["dsr:export"])
    assert client.get(f"/api/v1/profiles/{own}").status_code == 200
    found = client.post("/api/v1/profiles/lookup", {"email": "visitor@example.com"}, format="json").json()
    assert [p["id"] for p in found["results"]] == [str(own)]
    assert client.put(f"/api/v1/profiles/{own}/consents", {
        "channel": "api", "consents": [{"purpose": "marketing", "granted": True}]}, format="json").status_code == 200
    batch = client.post("/api/v1/consents/batch", {"channel": "api", "records": [
        {"profile": {"email": "visitor@example.com"}, "purpose": "analytics", "granted": True}]},
        format="json").json()
    assert batch["results"][0]["status"] == "recorded"
    with django_capture_on_commit_callbacks(execute=True):
        filed = client.post("/api/v1/dsr", {"type": "access", "identifiers": {"email": "visitor@example.com"}},
                            format="json").json()
    result = client.get(f"/api/v1/dsr/{filed['id']}").json()["result"]
    assert result["profile_id"] == str(own)


def test_a_merged_survivor_is_visible_to_every_contributing_source(crm, web):
    crm_side = ingest(crm, "c-7", email="both@example.com")
    web_side = ingest(web, "w-7", phone="+442079460001")
    # The CRM then learns the phone too: the two profiles merge.
    survivor = ingest(crm, "c-7b", email="both@example.com", phone="+442079460001")
    assert survivor in (crm_side, web_side)
    absorbed = web_side if survivor == crm_side else crm_side
    web_key, crm_key = client_for(PEOPLE_SCOPES, source=web), client_for(PEOPLE_SCOPES, source=crm)
    for client in (web_key, crm_key):
        body = client.get(f"/api/v1/profiles/{survivor}").json()
        assert body["id"] == str(survivor) and "both@example.com" in body["identifiers"]["email"]
        assert client.get(f"/api/v1/profiles/{absorbed}").json() == {"id": str(absorbed),
                                                                     "merged_into": str(survivor)}
    found = web_key.post("/api/v1/profiles/lookup", {"email": "both@example.com"}, format="json").json()
    assert [p["id"] for p in found["results"]] == [str(survivor)]


def test_a_source_that_never_wrote_about_the_merged_person_still_sees_nothing(crm, web, source_factory):
    shop = source_factory("shop")
    ingest(crm, "c-8", email="pair@example.com")
    ingest(web, "w-8", phone="+442071838750")
    survivor = ingest(crm, "c-8b", email="pair@example.com", phone="+442071838750")
    shop_key = client_for(PEOPLE_SCOPES, source=shop)
    assert shop_key.get(f"/api/v1/profiles/{survivor}").status_code == 404


def test_unbound_keys_keep_seeing_everyone(victim):
    client = client_for(PEOPLE_SCOPES)
    assert client.get(f"/api/v1/profiles/{victim}").status_code == 200
    found = client.post("/api/v1/profiles/lookup", {"email": "victim@example.com"}, format="json").json()
    assert [p["id"] for p in found["results"]] == [str(victim)]


# --- every other door that takes a profile id or lists people --------------------------------------------------


def test_web_bound_key_cannot_attach_events_to_a_crm_only_profile_id(web, victim):
    attacker = client_for(["events:write"], source=web)
    response = attacker.post("/api/v1/events/batch", {"source": "web", "events": [
        {"profile_id": str(victim), "type": "view", "item_id": "i-1"},
        {"profile_id": str(uuid.uuid4()), "type": "view", "item_id": "i-1"}]}, format="json")
    stranger, nobody = response.json()["results"]
    assert stranger["status"] == nobody["status"] == "rejected"
    assert stranger["errors"] == nobody["errors"] and stranger["profile_id"] is None
    assert not Event.objects.filter(profile_id=victim).exists()
    own = ingest(web, "w-ev", email="shopper@example.com")
    mine = attacker.post("/api/v1/events/batch", {"source": "web", "events": [
        {"profile_id": str(own), "type": "view", "item_id": "i-1"}]}, format="json").json()["results"][0]
    assert mine["status"] == "accepted" and mine["profile_id"] == str(own)


def test_merge_conflicts_and_the_consent_ledger_list_only_the_keys_people(crm, web, victim):
    own = ingest(web, "w-9", email="mine@example.com")
    MergeConflict.objects.create(profile_id=victim, other_profiles=[str(own)], reason="merge_blocked")
    MergeConflict.objects.create(profile_id=own, other_profiles=[], reason="merge_blocked")
    consent_set(profile_id=victim, purpose="marketing", granted=True)
    consent_set(profile_id=own, purpose="marketing", granted=True)
    key = client_for([*PEOPLE_SCOPES, "audit:read"], source=web)
    conflicts = key.get("/api/v1/merge-conflicts").json()["results"]
    assert [c["profile_id"] for c in conflicts] == [str(own)]
    events = key.get("/api/v1/consents/events").json()["results"]
    assert {e["profile_id"] for e in events} == {str(own)}
    assert key.get("/api/v1/consents/events", {"profile": str(victim)}).json()["results"] == []
    assert key.get("/api/v1/consents/export").status_code == 403
    unbound = client_for([*PEOPLE_SCOPES, "audit:read"])
    assert len(unbound.get("/api/v1/merge-conflicts").json()["results"]) == 2
    assert {e["profile_id"] for e in unbound.get("/api/v1/consents/events").json()["results"]} == {
        str(own), str(victim)}


def test_segment_members_list_only_the_keys_people(web, victim):
    own = ingest(web, "w-10", email="member@example.com")
    segmentation = Segmentation.objects.create(k=1, seed=1, model={})
    segment = Segment.objects.create(segmentation=segmentation, index=0, name="All", centroid={})
    for pid in (victim, own):
        SegmentMembership.objects.create(segmentation=segmentation, segment=segment, profile_id=pid,
                                         r_score=5, f_score=5, m_score=5)
        consent_set(profile_id=pid, purpose="analytics", granted=True)
        consent_set(profile_id=pid, purpose="marketing", granted=True)
    path = f"/api/v1/segments/{segment.id}/members"
    bound = client_for(["segments:members"], source=web).get(path, {"purpose": "marketing"}).json()["results"]
    assert [m["profile_id"] for m in bound] == [str(own)]
    unbound = client_for(["segments:members"]).get(path, {"purpose": "marketing"}).json()["results"]
    assert sorted(m["profile_id"] for m in unbound) == sorted([str(own), str(victim)])


def test_an_unmerge_takes_the_absorbed_sources_visibility_back(crm, web):
    ingest(crm, "c-11", email="split@example.com")
    web_side = ingest(web, "w-11", phone="+442071234567")
    survivor = ingest(crm, "c-11b", email="split@example.com", phone="+442071234567")
    merge = Merge.objects.get()
    web_key = client_for(PEOPLE_SCOPES, source=web)
    crm_side = merge.absorbed_id if survivor == web_side else survivor
    assert web_key.get(f"/api/v1/profiles/{crm_side}").status_code == 200  # merged: one person
    assert web_key.post(f"/api/v1/merges/{merge.id}/unmerge", {}, format="json").status_code == 200
    # Back apart, the web key sees its own person again and no longer the CRM's one.
    assert web_key.get(f"/api/v1/profiles/{web_side}").status_code == 200
    assert web_key.get(f"/api/v1/profiles/{crm_side}").status_code == 404


def test_an_erased_person_is_unknown_to_a_bound_key(crm, victim):
    from cdp.services.erasure import profile_erase

    profile_erase(profile_id=victim)
    bound, unbound = client_for(PEOPLE_SCOPES, source=crm), client_for(PEOPLE_SCOPES)
    assert bound.get(f"/api/v1/profiles/{victim}").status_code == 404
    assert unbound.get(f"/api/v1/profiles/{victim}").status_code == 410


def test_webhooks_made_before_owners_are_managed_only_by_unbound_keys(web):
    from cdp.webhooks.services.subscriptions import webhook_create

    legacy = webhook_create(url="https://hooks.example.com/legacy", events=["consent.changed"]).subscription
    bound, unbound = client_for([MANAGE], source=web), client_for([MANAGE])
    assert bound.get("/api/v1/webhooks").json()["results"] == []
    assert bound.post(f"/api/v1/webhooks/{legacy.id}/rotate-secret", {}, format="json").status_code == 404
    assert [w["id"] for w in unbound.get("/api/v1/webhooks").json()["results"]] == [str(legacy.id)]
    assert unbound.delete(f"/api/v1/webhooks/{legacy.id}").status_code == 204


def test_a_dsr_filed_elsewhere_is_read_by_no_key(victim):
    from consent.services.dsr import dsr_submit

    request = dsr_submit(request_type="access", channel="preference_center", actor="person", profile_id=victim)
    assert client_for(PEOPLE_SCOPES, extra_scopes=["dsr:export"]).get(f"/api/v1/dsr/{request.id}").status_code == 404


def test_erasure_summaries_need_no_export_scope(victim, django_capture_on_commit_callbacks):
    client = client_for(PEOPLE_SCOPES)
    with django_capture_on_commit_callbacks(execute=True):
        filed = client.post("/api/v1/dsr", {"type": "erasure", "identifiers": {"email": "victim@example.com"}},
                            format="json").json()
    result = client.get(f"/api/v1/dsr/{filed['id']}").json()["result"]
    assert result["found"] is True and result["consent_ledger"] == "kept"


def test_a_bound_keys_pages_are_full_of_its_own_people(crm, web, victim):
    """The boundary filters through the one pager's `keep`: a page holds `limit` of the key's
    own rows whenever they exist (before, the rows of other people left holes in pages)."""
    own = ingest(web, "w-10", email="pages@example.com")
    for _ in range(3):
        MergeConflict.objects.create(profile_id=victim, other_profiles=[], reason="merge_blocked")
        MergeConflict.objects.create(profile_id=own, other_profiles=[], reason="merge_blocked")
    for purpose in ("marketing", "analytics", "personalization"):
        consent_set(profile_id=victim, purpose=purpose, granted=True)
        consent_set(profile_id=own, purpose=purpose, granted=True)
    key = client_for([*PEOPLE_SCOPES, "audit:read"], source=web)
    for path in ("/api/v1/merge-conflicts", "/api/v1/consents/events"):
        first = key.get(path, {"limit": 2}).json()
        rest = key.get(path, {"limit": 2, "cursor": first["next_cursor"]}).json()
        assert [len(first["results"]), len(rest["results"])] == [2, 1] and rest["next_cursor"] is None, path
        assert {r["profile_id"] for r in first["results"] + rest["results"]} == {str(own)}
