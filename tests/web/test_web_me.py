"""The preference center: choices, GPC, recommendations and their explanations, downloads,
erasure, and that a customer reaches only their own data."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from web_helpers import (  # noqa: F401
    _fresh_cache,
    ada,
    bob,
    recommendations_write,
    shop,
    sign_in,
)

from consent.models import AccessLog, ConsentEvent, DataSubjectRequest, DsrApprovalRule, ServedNotice
from consent.notices import notice_publish
from consent.policy import is_allowed
from personalization.models import Recommendation

pytestmark = pytest.mark.django_db

ME_GETS = ["/me/", "/me/data/", "/me/data/receipts/", "/me/erase/"]
ME_POSTS = ["/me/choices/", "/me/personalization/", "/me/data/export/", "/me/erase/"]


@pytest.fixture
def ada_client(ada):
    client = Client()
    sign_in(client, ada.profile_id)
    return client


def choices(client, allow: list[str], **extra):
    page = client.get("/me/")
    versions = dict(re.findall(r'name="notice_(\w+)" value="(\d+)"', page.content.decode()))
    data = {"allow": allow, **{f"notice_{p}": v for p, v in versions.items()}}
    return client.post("/me/choices/", data, **extra)


def test_every_page_needs_a_signed_in_customer(ada):
    client = Client()
    for path in ME_GETS:
        assert client.get(path)["Location"] == "/me/signin/", path
    for path in ME_POSTS:
        assert client.post(path, {"allow": ["marketing"], "confirm": "yes"})["Location"] == "/me/signin/", path
    assert not ConsentEvent.objects.filter(channel="preference_center").exists()
    assert not DataSubjectRequest.objects.exists()


def test_the_page_shows_each_purpose_with_its_notice_and_logs_it_as_served(ada_client, ada):
    page = ada_client.get("/me/")
    html = page.content.decode()
    assert page.status_code == 200
    assert page["Cache-Control"].startswith("max-age=0") or "no-cache" in page["Cache-Control"]
    for title in ("Analytics", "Personalized recommendations", "Marketing", "Data from partners",
                  "Sale and sharing"):
        assert title in html
    assert "We may contact you with offers" in html and "Notice version 1" in html
    # Every control has a label.
    for box in re.findall(r'<input type="checkbox" id="([\w-]+)"', html):
        assert f'<label for="{box}"' in html
    assert ServedNotice.objects.filter(profile_id=ada.profile_id).count() == 5


def test_a_notice_is_recorded_as_served_only_when_shown_anew(ada_client, ada):
    """Issue 22: served_notices grew by five on every page load."""
    for _ in range(3):
        assert ada_client.get("/me/").status_code == 200
    served = ServedNotice.objects.filter(profile_id=ada.profile_id)
    assert served.count() == 5
    notice_publish(purpose="marketing", texts={"en": ("Marketing", "New words.")}, material=True, actor="staff:1")
    ada_client.get("/me/")
    ada_client.get("/me/")
    assert served.count() == 6
    assert set(served.filter(purpose="marketing").values_list("notice_version", flat=True)) == {1, 2}


def test_saving_records_only_what_changed_under_the_notice_shown(ada_client, ada):
    before = ConsentEvent.objects.filter(profile_id=ada.profile_id).count()
    response = choices(ada_client, ["personalization", "analytics", "marketing"],
                       REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="Firefox")
    assert response.status_code == 302
    new = list(ConsentEvent.objects.filter(profile_id=ada.profile_id).order_by("seq")[before:])
    assert [(e.purpose, e.granted, e.channel, e.notice_version) for e in new] == [
        ("marketing", True, "preference_center", 1)]
    assert new[0].ip_hash and "203.0.113.9" not in new[0].ip_hash and new[0].user_agent_hash
    assert choices(ada_client, ["personalization", "analytics", "marketing"]).status_code == 302
    assert ConsentEvent.objects.filter(profile_id=ada.profile_id).count() == before + 1  # nothing new
    choices(ada_client, ["analytics"])
    assert not is_allowed(ada.profile_id, "personalization") and not is_allowed(ada.profile_id, "marketing")


def test_a_notice_published_while_the_page_was_open_must_be_read_first(ada_client, ada):
    page = ada_client.get("/me/")
    versions = dict(re.findall(r'name="notice_(\w+)" value="(\d+)"', page.content.decode()))
    notice_publish(purpose="marketing", texts={"en": ("Marketing", "New text")}, material=True, actor="test")
    response = ada_client.post("/me/choices/", {"allow": ["personalization", "analytics", "marketing"],
                                                **{f"notice_{p}": v for p, v in versions.items()}}, follow=True)
    assert b"notice for this purpose changed" in response.content
    assert not is_allowed(ada.profile_id, "marketing")


def test_global_privacy_control_is_honoured_and_shown(ada_client, ada):
    page = ada_client.get("/me/", HTTP_SEC_GPC="1")
    assert b"Global Privacy Control is on" in page.content
    [event] = ConsentEvent.objects.filter(profile_id=ada.profile_id, channel="gpc")
    assert event.purpose == "sale_sharing" and not event.granted
    ada_client.get("/me/", HTTP_SEC_GPC="1")
    assert ConsentEvent.objects.filter(profile_id=ada.profile_id, channel="gpc").count() == 1  # once, not per page
    refused = choices(ada_client, ["personalization", "analytics", "sale_sharing"], HTTP_SEC_GPC="1")
    assert refused.status_code == 302
    assert not is_allowed(ada.profile_id, "sale_sharing")
    assert "Global Privacy Control" in ada_client.get("/me/", HTTP_SEC_GPC="1").content.decode()
    assert "Global Privacy Control is on" not in ada_client.get("/me/").content.decode()  # shown when sent


def test_recommendations_show_why_from_the_structured_explanation(ada_client, ada):
    recommendations_write(ada.profile_id, items=[("sku-1", "Cast iron pan"), ("sku-2", "Chef's knife")],
                          own=[("sku-9", "Wooden spoon"), ("sku-8", "Kitchen scale")],
                          segment={"id": "seg-1", "name": "Keen cooks"})
    html = ada_client.get("/me/").content.decode()
    assert "Cast iron pan" in html and "Chef&#x27;s knife" in html
    assert html.count("Why am I seeing this?") == 2
    why = html[html.index("Why am I seeing this?"):]
    assert "You bought “Wooden spoon”" in why and "%" not in why   # no internal percentages
    assert "“Keen cooks”" in why                           # the segment
    assert "Categories you chose before" in why and "kitchen" in why  # the shared category
    assert "Test source" in why                            # data sources by name
    assert "Personalized recommendations" in why and "Analytics" in why  # purposes
    assert "Turn off personalized recommendations" in why


def test_turning_personalization_off_removes_the_recommendations_at_once(ada_client, ada):
    recommendations_write(ada.profile_id, items=[("sku-1", "Cast iron pan")], own=[("sku-9", "Wooden spoon")])
    response = ada_client.post("/me/personalization/", {"personalization": "off"})
    assert response.status_code == 302
    assert not Recommendation.objects.filter(profile_id=ada.profile_id).exists()
    event = ConsentEvent.objects.filter(profile_id=ada.profile_id).latest("seq")
    assert (event.purpose, event.granted, event.channel) == ("personalization", False, "preference_center")
    html = ada_client.get("/me/").content.decode()
    assert "Cast iron pan" not in html and "Personalized recommendations are <strong>off</strong>" in html
    page = ada_client.get("/me/")
    version = re.search(r'name="notice_personalization" value="(\d+)"', page.content.decode()).group(1)
    ada_client.post("/me/personalization/", {"personalization": "on", "notice_personalization": version})
    assert is_allowed(ada.profile_id, "personalization")


def test_receipts_of_ones_own_decisions_only(ada_client, ada, bob):
    own = ConsentEvent.objects.filter(profile_id=ada.profile_id).first()
    other = ConsentEvent.objects.filter(profile_id=bob.profile_id).first()
    response = ada_client.get(f"/me/data/receipts/{own.id}/")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    receipt = json.loads(response.content)
    assert receipt["consentReceiptID"] == str(own.id) and receipt["piiPrincipalId"] == str(ada.profile_id)
    assert ada_client.get(f"/me/data/receipts/{other.id}/").status_code == 404  # another person's event id
    everything = json.loads(ada_client.get("/me/data/receipts/").content)["receipts"]
    assert {r["piiPrincipalId"] for r in everything} == {str(ada.profile_id)}
    assert len(everything) == ConsentEvent.objects.filter(profile_id=ada.profile_id).count()
    # Both downloads are reads of the person's consent, logged by the consent selectors.
    logged = AccessLog.objects.filter(profile_id=ada.profile_id, actor="data_subject", kind="read")
    assert sorted(logged.values_list("fields", flat=True)) == [["consent_receipt"], ["consent_receipts"]]


def test_the_access_export_downloads_and_is_ones_own(ada_client, ada, bob, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert ada_client.post("/me/data/export/").status_code == 302
    dsr = DataSubjectRequest.objects.get(profile_id=ada.profile_id)
    assert (dsr.type, dsr.status, dsr.channel) == ("access", "completed", "preference_center")
    page = ada_client.get("/me/data/").content.decode()
    assert f"/me/data/requests/{dsr.id}/download/" in page
    download = ada_client.get(f"/me/data/requests/{dsr.id}/download/")
    assert download.status_code == 200 and "no-store" in download["Cache-Control"]
    document = json.loads(download.content)
    assert document["profile_id"] == str(ada.profile_id)
    assert ada.email in json.dumps(document["data"])  # everything, identifiers included

    bob_client = Client()
    sign_in(bob_client, bob.profile_id)
    assert bob_client.get(f"/me/data/requests/{dsr.id}/download/").status_code == 404  # tampered id
    assert bob_client.get(f"/me/data/receipts/{ConsentEvent.objects.filter(profile_id=ada.profile_id).first().id}/"
                          ).status_code == 404


def test_an_export_awaiting_approval_says_so(ada_client, ada, django_capture_on_commit_callbacks):
    DsrApprovalRule.objects.create(type="access", requires_approval=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = ada_client.post("/me/data/export/", follow=True)
    assert b"needs a check by our privacy team" in response.content
    assert DataSubjectRequest.objects.get(profile_id=ada.profile_id).status == "awaiting_approval"


def test_a_profile_id_in_the_form_changes_nothing_for_another_person(ada_client, ada, bob):
    before = ConsentEvent.objects.filter(profile_id=bob.profile_id).count()
    ada_client.post("/me/choices/", {"allow": [], "profile_id": str(bob.profile_id)})
    ada_client.post("/me/personalization/", {"personalization": "off", "profile_id": str(bob.profile_id)})
    assert ConsentEvent.objects.filter(profile_id=bob.profile_id).count() == before
    assert is_allowed(bob.profile_id, "personalization")
    assert not is_allowed(ada.profile_id, "personalization")


def test_forms_need_their_csrf_token(ada):
    client = Client()
    sign_in(client, ada.profile_id)
    client.handler.enforce_csrf_checks = True
    for path in ME_POSTS:
        assert client.post(path, {"allow": [], "personalization": "off", "confirm": "yes"}).status_code == 403
    assert is_allowed(ada.profile_id, "personalization")
    assert not DataSubjectRequest.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_erasure_needs_a_confirmation_then_erases_and_signs_out(ada_client, ada):
    page = ada_client.get("/me/erase/")
    assert page.status_code == 200 and b"This cannot be undone" in page.content
    unconfirmed = ada_client.post("/me/erase/", {})
    assert unconfirmed.status_code == 400 and not DataSubjectRequest.objects.exists()
    done = ada_client.post("/me/erase/", {"confirm": "yes"})  # committed: carried out at once, in-process
    assert done.status_code == 200 and b"Your data was erased" in done.content
    dsr = DataSubjectRequest.objects.get(profile_id=ada.profile_id)
    assert (dsr.type, dsr.status) == ("erasure", "completed")
    assert ada_client.get("/me/")["Location"] == "/me/signin/"


def test_an_erasure_carried_out_later_ends_the_session(ada_client, ada):
    from cdp.models import Profile, ProfileStatus

    Profile.objects.filter(id=ada.profile_id).update(status=ProfileStatus.ERASED)
    response = ada_client.get("/me/", follow=True)
    assert b"Your data was erased" in response.content
    assert ada_client.get("/me/data/")["Location"] == "/me/signin/"


def test_an_erasure_waiting_for_approval_keeps_the_person_signed_in(ada_client, ada):
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)
    response = ada_client.post("/me/erase/", {"confirm": "yes"}, follow=True)
    assert b"Your erasure request was received" in response.content
    assert DataSubjectRequest.objects.get(profile_id=ada.profile_id).status == "awaiting_approval"
    assert ada_client.get("/me/").status_code == 200
