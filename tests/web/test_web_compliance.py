"""The compliance console: who may open it, the throttled log-in, look-ups by POST, the ledger,
the DSR queue and its decisions, the privacy budget and exports."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from web_helpers import (  # noqa: F401
    PASSWORD,
    _fresh_cache,
    ada,
    bob,
    officer,
    officer_client,
    operator,
    operator_client,
    shop,
    sign_in,
    staff_user,
)

from consent.models import AccessLog, ChainHead, DataSubjectRequest, DsrApprovalRule
from consent.services.consents import consent_set
from consent.services.dsr import dsr_submit

pytestmark = pytest.mark.django_db

PAGES = ["/compliance/", "/compliance/subjects/", "/compliance/requests/", "/compliance/ledger/",
         "/compliance/budget/", "/compliance/ledger/export/?date_from=2026-01-01&date_to=2026-01-31&kind=history"
         "&format=csv"]
POSTS = ["/compliance/ledger/verify/", "/compliance/subjects/"]


def test_anonymous_visitors_are_sent_to_the_staff_log_in():
    client = Client()
    for path in PAGES + POSTS:
        response = client.get(path) if path in PAGES else client.post(path, {"kind": "email", "value": "x@y.z"})
        assert response.status_code == 302 and response["Location"].startswith("/staff/login/?next="), path
    assert not AccessLog.objects.exists()


def test_staff_without_the_compliance_role_cannot_open_the_console(staff_user, operator_client, ada):
    plain = Client()
    plain.force_login(staff_user("plain", None))
    for client in (operator_client, plain):
        for path in PAGES:
            response = client.get(path)
            assert response.status_code == 403 and b"compliance officers only" in response.content, path
        assert client.post("/compliance/ledger/verify/").status_code == 403
        assert client.post("/compliance/subjects/", {"kind": "email", "value": ada.email}).status_code == 403
    assert not AccessLog.objects.filter(purpose__in=["ledger_verified", "subject_lookup"]).exists()


def test_a_signed_in_customer_is_not_staff(ada):
    client = Client()
    sign_in(client, ada.profile_id)
    assert client.get("/compliance/")["Location"].startswith("/staff/login/")
    assert client.get("/ops/")["Location"].startswith("/staff/login/")


def test_compliance_officers_open_every_page(officer_client):
    for path in PAGES:
        assert officer_client.get(path).status_code == 200, path


def test_staff_log_in_lands_on_the_console_and_is_throttled(officer):
    client = Client()
    page = client.get("/compliance/", follow=True)
    assert b"Staff sign-in" in page.content
    for _ in range(4):
        assert client.post("/staff/login/", {"username": "officer", "password": "wrong"}).status_code == 400
    locked = client.post("/staff/login/", {"username": "officer", "password": "wrong"})
    assert locked.status_code == 429 and b"Too many failed attempts" in locked.content
    # Locked: even the right password is refused for a while.
    again = client.post("/staff/login/", {"username": "officer", "password": PASSWORD})
    assert again.status_code == 429 and "_auth_user_id" not in client.session
    # Another address is not locked out.
    elsewhere = Client(REMOTE_ADDR="198.51.100.7")
    ok = elsewhere.post("/staff/login/", {"username": "officer", "password": PASSWORD, "next": "/compliance/"})
    assert ok.status_code == 302 and ok["Location"] == "/compliance/"


def test_staff_log_in_never_redirects_off_site(officer):
    client = Client()
    response = client.post("/staff/login/", {"username": "officer", "password": PASSWORD,
                                              "next": "https://evil.example/"})
    assert response["Location"] == "/compliance/"


def test_looking_up_a_person_is_a_post_shows_the_timeline_and_is_logged(officer_client, officer, ada, bob):
    consent_set(profile_id=ada.profile_id, purpose="personalization", granted=False, channel="preference_center",
                actor="data_subject")
    response = officer_client.post("/compliance/subjects/", {"kind": "email", "value": "  ADA@example.com "})
    html = response.content.decode()
    assert response.status_code == 200
    assert str(ada.profile_id) in html and str(bob.profile_id) not in html
    timeline = html[html.index('id="consent-timeline"'):]
    assert "Personalized recommendations" in timeline and "Withdrawn" in timeline and "Preference center" in timeline
    assert "v1" in timeline and "preference_center" not in timeline
    lookup = AccessLog.objects.get(purpose="subject_lookup")
    assert lookup.profile_id == ada.profile_id and lookup.actor == f"staff:{officer.pk}"
    assert lookup.detail == {"by": "email"}  # the value typed is not kept
    # The look-up shows in the person's own access list.
    again = officer_client.post("/compliance/subjects/", {"kind": "profile_id", "value": str(ada.profile_id)})
    assert "Looked the person up in the console" in again.content.decode()
    assert "officer (staff)" in again.content.decode() and "subject_lookup" not in again.content.decode()


def test_the_timeline_shows_the_stated_evidence_of_an_imported_decision(officer_client, ada):
    from consent.services.consents import ConsentChange, Evidence, consents_record_many

    consents_record_many([(ada.profile_id, [ConsentChange("marketing", True)])], channel="import", actor="import",
                         source="shop", evidence=Evidence(note="Shop sign-up terms v2 & newsletter form"))
    response = officer_client.post("/compliance/subjects/", {"kind": "profile_id", "value": str(ada.profile_id)})
    timeline = response.content.decode()[response.content.decode().index('id="consent-timeline"'):]
    assert "stated: Shop sign-up terms v2 &amp; newsletter form" in timeline  # escaped as text


def test_a_look_up_by_get_reveals_nothing(officer_client, ada):
    response = officer_client.get(f"/compliance/subjects/?kind=email&value={ada.email}")
    assert response.status_code == 200 and str(ada.profile_id) not in response.content.decode()


def test_look_ups_that_find_nobody_or_lack_the_source(officer_client, shop):
    nobody = officer_client.post("/compliance/subjects/", {"kind": "email", "value": "nobody@example.com"})
    assert b"Nobody found" in nobody.content
    unscoped = officer_client.post("/compliance/subjects/", {"kind": "crm_id", "value": "C-1"})
    assert unscoped.status_code == 400 and b"Choose the source" in unscoped.content


@pytest.mark.django_db(transaction=True)  # the verification is queued on commit, as in production
def test_verify_now_records_the_outcome_and_shows_a_broken_ledger(officer_client, officer, ada):
    response = officer_client.post("/compliance/ledger/verify/", follow=True)
    assert b"The consent ledger is intact" in response.content
    entry = AccessLog.objects.get(purpose="ledger_verified")
    assert entry.detail["intact"] is True and entry.actor == f"staff:{officer.pk}"
    assert "Intact" in officer_client.get("/compliance/").content.decode()
    ledger_page = officer_client.get("/compliance/ledger/").content.decode()
    # Exact counts of events and chains count people beside the DP consent-rate release.
    assert f"{entry.detail['subjects']} chains" not in ledger_page and " events in " not in ledger_page
    assert f">{entry.detail['subjects']}<" not in ledger_page

    ChainHead.objects.filter(profile_id=ada.profile_id).update(mac="0" * 64)  # a forged head
    broken = officer_client.post("/compliance/ledger/verify/", {"next": "ledger"}, follow=True)
    html = broken.content.decode()
    assert "The consent ledger is broken" in html and "Broken" in html
    latest = AccessLog.objects.filter(purpose="ledger_verified").latest("id")
    assert latest.detail["intact"] is False and latest.detail["code"] == "head_forged"


def test_the_dsr_queue_highlights_overdue_requests(officer_client, ada, bob):
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)
    late = dsr_submit(request_type="erasure", channel="api", actor="api_key:test", profile_id=ada.profile_id)
    fresh = dsr_submit(request_type="erasure", channel="api", actor="api_key:test", profile_id=bob.profile_id)
    DataSubjectRequest.objects.filter(id=late.id).update(received_at=timezone.now() - timedelta(days=40),
                                                         due_at=timezone.now() - timedelta(days=10))
    html = officer_client.get("/compliance/requests/").content.decode()
    rows = {r: html[html.index(str(r.id)[:8]) - 200:html.index(str(r.id)[:8])] for r in (late, fresh)}
    assert 'class="overdue"' in rows[late] and 'class="overdue"' not in rows[fresh]
    assert "1 overdue" in html


def test_decisions_on_a_request_are_recorded(officer_client, ada, bob):
    DsrApprovalRule.objects.create(type="access", requires_approval=True)
    first = dsr_submit(request_type="access", channel="api", actor="api_key:test", profile_id=ada.profile_id)
    second = dsr_submit(request_type="access", channel="api", actor="api_key:test", profile_id=bob.profile_id)

    missing_reason = officer_client.post(f"/compliance/requests/{second.id}/", {"action": "reject"})
    assert missing_reason.status_code == 400 and b"Give a reason" in missing_reason.content
    officer_client.post(f"/compliance/requests/{second.id}/", {"action": "reject", "reason": "Duplicate request."})
    second.refresh_from_db()
    assert (second.status, second.reason) == ("rejected", "Duplicate request.")

    officer_client.post(f"/compliance/requests/{first.id}/", {"action": "extend", "days": "30",
                                                             "reason": "Complex request."})
    first.refresh_from_db()
    assert first.extended
    officer_client.post(f"/compliance/requests/{first.id}/", {"action": "approve"})
    first.refresh_from_db()
    assert first.status == "received"
    page = officer_client.get(f"/compliance/requests/{first.id}/").content.decode()
    assert "Approved" in page and "Extended" in page and "officer (staff)" in page
    assert officer_client.get("/compliance/requests/00000000-0000-0000-0000-000000000000/").status_code == 404


def test_the_ledger_exports_a_date_range_and_logs_it(officer_client, officer, ada):
    today = timezone.now().date()
    response = officer_client.get(f"/compliance/ledger/export/?date_from={today}&date_to={today}&kind=history"
                                  "&format=csv")
    assert response.status_code == 200 and response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode()
    assert body.splitlines()[0].startswith("id,profile_id,position,purpose,granted")
    assert str(ada.profile_id) in body
    assert AccessLog.objects.filter(purpose="consent_export", actor=f"staff:{officer.pk}").exists()
    past = officer_client.get("/compliance/ledger/export/?date_from=2020-01-01&date_to=2020-01-02&kind=history"
                              "&format=jsonl")
    assert b"".join(past.streaming_content) == b""
    backwards = officer_client.get(f"/compliance/ledger/export/?date_from={today}&date_to=2020-01-01"
                                   "&kind=history&format=csv")
    assert backwards.status_code == 400 and b"before the start date" in backwards.content


def test_consent_rates_and_the_privacy_budget_come_from_the_dp_releases(officer_client, ada, bob):
    from personalization.privacy import consent_rates_release

    release = consent_rates_release(day="2026-11-01")
    overview = officer_client.get("/compliance/").content.decode()
    assert '<svg class="chart"' in overview and "Consent rates per purpose over time" in overview
    assert "2026-11-01" in overview
    budget = officer_client.get("/compliance/budget/").content.decode()
    assert "consent_rates" in budget and release.mechanism in budget
    assert f"{release.epsilon:.3f}" in budget


def test_an_officer_raises_the_lifetime_cap_with_a_reason_and_the_console_charts_it(officer_client, officer, ada,
                                                                                    bob):
    from personalization.models import PrivacyBudget, PrivacyBudgetChange
    from personalization.privacy import DATASET, consent_rates_release

    consent_rates_release(day="2026-11-01")
    page = officer_client.get("/compliance/budget/").content.decode()
    assert 'id="budget-customers-t"' in page and "cumulative ε spent against the lifetime cap" in page
    assert "The caps have never been changed" in page

    refused = officer_client.post("/compliance/budget/", {"dataset": DATASET, "limit": "epsilon_limit",
                                                          "value": "15", "reason": ""})
    assert refused.status_code == 400 and not PrivacyBudgetChange.objects.exists()

    done = officer_client.post("/compliance/budget/", {"dataset": DATASET, "limit": "epsilon_limit", "value": "15",
                                                       "reason": "Board approved the 2027 reporting plan"},
                               follow=True)
    assert b"recorded with your reason" in done.content
    assert PrivacyBudget.objects.get(dataset=DATASET).epsilon_limit == 15
    change = PrivacyBudgetChange.objects.get()
    assert change.actor == f"staff:{officer.pk}" and change.reason == "Board approved the 2027 reporting plan"
    page = done.content.decode()
    assert "Board approved the 2027 reporting plan" in page and "15.000" in page
    assert AccessLog.objects.filter(purpose="privacy_budget_changed", actor=f"staff:{officer.pk}").exists()


def test_an_operator_cannot_change_the_privacy_budget(operator_client, ada):
    from personalization.models import PrivacyBudget
    from personalization.privacy import DATASET, consent_rates_release

    consent_rates_release(day="2026-11-01")
    before = PrivacyBudget.objects.get(dataset=DATASET).epsilon_limit
    response = operator_client.post("/compliance/budget/", {"dataset": DATASET, "limit": "epsilon_limit",
                                                            "value": "1000", "reason": "more"})
    assert response.status_code == 403
    assert PrivacyBudget.objects.get(dataset=DATASET).epsilon_limit == before


def test_the_console_sends_forms_with_csrf_tokens(officer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer)
    assert client.post("/compliance/ledger/verify/").status_code == 403
    assert client.post("/compliance/subjects/", {"kind": "email", "value": "a@b.c"}).status_code == 403
    assert 'name="csrfmiddlewaretoken"' in client.get("/compliance/").content.decode()


def test_a_running_verification_shows_its_progress(officer_client, ada):
    from django.core.cache import cache

    from consent.models import LedgerVerification
    from consent.services.verification import progress_key

    running = LedgerVerification.objects.create(requested_by="staff:1", status="running", events_total=8)
    cache.set(progress_key(running.id), 2)
    html = officer_client.get("/compliance/ledger/").content.decode()
    assert "Verifying…" in html and "25% checked" in html and "2 of 8" not in html  # no exact counts of events
    assert 'data-refresh-seconds="3"' in html and "disabled>Verify now" in html
    again = officer_client.post("/compliance/ledger/verify/", follow=True).content.decode()
    assert "A verification is already running" in again
    assert LedgerVerification.objects.count() == 1
