"""Issue #22, the console side: finding things (search, filters, pages, the organisation's
access log, subject links, time zones) and the words people read (no raw keys or program
output, declined / withdrawn / expired / re-consent required, a neutral DSR decision form).
Each test reproduces a finding quoted in the issue."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from web_helpers import _fresh_cache, ada, bob, officer, officer_client, shop, staff_user  # noqa: F401

from consent.models import AccessLog, DataSubjectRequest, DsrApprovalRule
from consent.notices import notice_publish
from consent.services.access import operator_action_event
from consent.services.consents import consent_set
from consent.services.dsr import dsr_submit

pytestmark = pytest.mark.django_db

RAW = ["sale_sharing", "operator_action", "staff:", "found: True", "kinds: []", "sections: [", "subject_lookup",
       "preference_center", "awaiting_approval"]


def _visible(html: str) -> str:
    """The text a reader sees: no tags, attributes, scripts or the header's forms."""
    body = html.split('<main id="main"', 1)[1]
    return re.sub(r"<[^>]+>", " ", body)


def _no_raw_keys(html: str) -> None:
    text = _visible(html)
    for raw in RAW:
        assert raw not in text, raw


def _entry_at(at, *, action: str) -> AccessLog:
    """An entry written at another time (the log is append-only: written so, never moved)."""
    return AccessLog.objects.create(at=at, kind="operator_action", actor="system", purpose=action)


# --- the organisation's access log -------------------------------------------------------------------------


def test_the_organisation_access_log_page_lists_entries_in_words_and_is_itself_logged(officer_client, officer,
                                                                                    ada):
    operator_action_event(actor=f"staff:{officer.pk}", action="subject_lookup", profile_id=ada.profile_id,
                          detail={"by": "email"})
    response = officer_client.get("/compliance/access-log/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Looked the person up in the console" in html and "officer (staff)" in html
    _no_raw_keys(html)
    viewed = AccessLog.objects.filter(purpose="access_log_read", actor=f"staff:{officer.pk}")
    assert viewed.count() == 1 and viewed.get().detail == {"filters": {}, "page": 1}
    # The subject is a POST form to the subject page: the id is in the body, never in a link.
    assert f'name="value" value="{ada.profile_id}"' in html and f"?value={ada.profile_id}" not in html
    assert "/compliance/access-log/" in officer_client.get("/compliance/").content.decode()


def test_only_compliance_officers_open_the_access_log(staff_user):
    plain, operator = Client(), Client()
    plain.force_login(staff_user("plain", None))
    operator.force_login(staff_user("opsy", "operator"))
    for client in (operator, plain):
        assert client.get("/compliance/access-log/").status_code == 403
    assert Client().get("/compliance/access-log/").status_code == 302
    assert not AccessLog.objects.filter(purpose="access_log_read").exists()


def test_the_access_log_filters_by_staff_member_kind_action_search_and_dates(officer_client, officer, staff_user,
                                                                              ada):
    other = staff_user("auditor", "compliance")
    operator_action_event(actor=f"staff:{other.pk}", action="consent_export")
    operator_action_event(actor=f"staff:{officer.pk}", action="ledger_verified")
    _entry_at(timezone.now() - timedelta(days=40), action="retention_purge")

    def rows(query: str) -> str:
        response = officer_client.get(f"/compliance/access-log/?{query}")
        assert response.status_code == 200, response.content[:300]
        html = response.content.decode()
        return html[html.index('id="access-log"'):] if 'id="access-log"' in html else ""

    by_other = rows(f"actor=staff:{other.pk}")
    assert "Exported the consent ledger" in by_other and "Verified the consent ledger" not in by_other
    searched = rows("q=verified")
    assert "Verified the consent ledger" in searched and "Exported the consent ledger" not in searched
    assert "Verified the consent ledger" in rows("purpose=ledger_verified")
    assert rows("q=nothing-like-this") == ""
    since = (timezone.localdate() - timedelta(days=7)).isoformat()
    recent = rows(f"date_from={since}")
    assert "Purged data past its retention" not in recent and "Exported the consent ledger" in recent
    assert "Purged data past its retention" in rows("actor=system")
    assert "Exported the consent ledger" not in rows("kind=read")
    # The filters are recorded as codes; the search text is not kept.
    entry = AccessLog.objects.filter(purpose="access_log_read").order_by("-id")[3]
    assert entry.detail["filters"] == {"search_text": "given"}
    backwards = officer_client.get("/compliance/access-log/?date_from=2026-02-02&date_to=2026-01-01")
    assert backwards.status_code == 400 and b"before the start date" in backwards.content


def test_the_access_log_pages_through_every_entry(officer_client, officer):
    for n in range(60):
        operator_action_event(actor="system", action=f"job_{n:02d}")
    first = officer_client.get("/compliance/access-log/").content.decode()
    assert "page 1 of 3" in first and 'rel="next"' in first and "?page=2" in first
    table = first.split('id="access-log"')[1]
    assert "Job 59" in table and "Job 00" not in table
    last = officer_client.get("/compliance/access-log/?actor=system&page=3").content.decode()
    assert "Job 00" in last.split('id="access-log"')[1] and 'rel="next"' not in last
    assert "actor=system&amp;page=2" in last


# --- the DSR queue ---------------------------------------------------------------------------------------


def _requests(ada, bob):
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)
    erasure = dsr_submit(request_type="erasure", channel="api", actor="api_key:test", profile_id=ada.profile_id)
    access = dsr_submit(request_type="access", channel="preference_center", actor="data_subject",
                        profile_id=bob.profile_id)
    rejected = dsr_submit(request_type="erasure", channel="api", actor="api_key:test", profile_id=bob.profile_id)
    DataSubjectRequest.objects.filter(id=rejected.id).update(status="rejected", reason="Duplicate.",
                                                             received_at=timezone.now() - timedelta(days=30))
    return erasure, access, rejected


def test_the_dsr_queue_filters_by_status_type_channel_dates_and_reference(officer_client, ada, bob):
    erasure, access, rejected = _requests(ada, bob)

    def shown(query: str) -> set:
        html = officer_client.get(f"/compliance/requests/?{query}").content.decode()
        return {r for r in (erasure, access, rejected) if str(r.id)[:8] in html}

    assert shown("") == {erasure, access}  # open by default
    assert shown("show=rejected") == {rejected}
    assert shown("show=all&type=access") == {access}
    assert shown("show=all&channel=api") == {erasure, rejected}
    week_ago = (timezone.localdate() - timedelta(days=7)).isoformat()
    assert shown(f"show=all&date_from={week_ago}") == {erasure, access}
    assert shown(f"show=all&q={str(rejected.id)[:8]}") == {rejected}
    html = officer_client.get("/compliance/requests/?show=all").content.decode()
    # Every subject links to the subject page (by POST), with words for the channel.
    assert html.count('class="subject-link"') == 3 and "Preference center" in html
    _no_raw_keys(html)


def test_the_dsr_queue_has_pages(officer_client, ada):
    for _ in range(27):
        dsr_submit(request_type="access", channel="api", actor="api_key:test", profile_id=ada.profile_id)
    html = officer_client.get("/compliance/requests/?show=all").content.decode()
    assert "1–25 of 27" in html and "page=2" in html
    assert "26–27 of 27" in officer_client.get("/compliance/requests/?show=all&page=2").content.decode()


# --- the subject page -----------------------------------------------------------------------------------


def test_the_subject_timeline_filters_by_purpose_decision_channel_and_dates(officer_client, ada):
    consent_set(profile_id=ada.profile_id, purpose="marketing", granted=False, channel="preference_center",
                actor="data_subject")
    consent_set(profile_id=ada.profile_id, purpose="analytics", granted=False, channel="api", actor="api_key:x")
    base = {"kind": "profile_id", "value": str(ada.profile_id)}

    def timeline(**filters) -> str:
        html = officer_client.post("/compliance/subjects/", {**base, **filters}).content.decode()
        part = html.split('id="consent-timeline"')
        return part[1].split("</table>")[0] if len(part) > 1 else ""

    everything = timeline()
    assert "Marketing" in everything and "Analytics" in everything and "Personalized recommendations" in everything
    marketing = timeline(purpose="marketing")
    assert "Marketing" in marketing and "Analytics" not in marketing
    declined = timeline(state="declined")
    assert "Marketing" in declined and "Withdrawn" not in declined
    assert "Analytics" in timeline(state="withdrawn") and "Marketing" not in timeline(state="withdrawn")
    assert "Marketing" not in timeline(channel="api")
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert timeline(date_from=tomorrow) == ""


def test_the_subject_timeline_pages_by_post(officer_client, ada):
    for n in range(14):
        consent_set(profile_id=ada.profile_id, purpose="marketing", granted=n % 2 == 0)
    base = {"kind": "profile_id", "value": str(ada.profile_id)}
    first = officer_client.post("/compliance/subjects/", base).content.decode()
    assert "1–25 of" not in first or "page 1 of" not in first  # 16 events: one page
    many = {**base, "purpose": ""}
    for n in range(14):
        consent_set(profile_id=ada.profile_id, purpose="analytics", granted=n % 2 == 1)
    page_one = officer_client.post("/compliance/subjects/", many).content.decode()
    assert 'form="timeline-filters" name="page" value="2"' in page_one
    page_two = officer_client.post("/compliance/subjects/", {**many, "page": "2"}).content.decode()
    assert "26–30 of 30" in page_two


def test_every_state_has_its_word_on_the_subject_page(officer_client, ada):
    """Declined vs withdrawn vs expired vs re-consent required, in "Consent now" too."""
    notice_publish(purpose="marketing", texts={"en": ("Marketing", "Offers by e-mail.")}, lifetime_days=1,
                   actor="staff:1")
    consent_set(profile_id=ada.profile_id, purpose="marketing", granted=True,
                occurred_at=timezone.now() - timedelta(days=5))
    notice_publish(purpose="analytics", texts={"en": ("Analytics", "We count visits.")}, material=True,
                   actor="staff:1")
    consent_set(profile_id=ada.profile_id, purpose="sale_sharing", granted=False)
    consent_set(profile_id=ada.profile_id, purpose="personalization", granted=False)
    html = officer_client.post("/compliance/subjects/", {"kind": "profile_id",
                                                         "value": str(ada.profile_id)}).content.decode()
    now = html.split('id="consent-now"')[1].split("</table>")[0]
    rows = {re.sub(r"<[^>]+>", "", r.split("</td>")[0]).strip(): r for r in re.findall(r"<tr><td>(.*?)</tr>", now,
                                                                                       re.S)}
    assert "Expired" in rows["Marketing"]
    assert "Re-consent required" in rows["Analytics"]
    assert "Declined" in rows["Sale and sharing"]
    assert "Withdrawn" in rows["Personalized recommendations"]
    _no_raw_keys(html)


# --- the DSR page ----------------------------------------------------------------------------------------


def test_the_dsr_page_reads_in_plain_language_with_a_neutral_decision_form(officer_client, ada, bob):
    erasure, access, _ = _requests(ada, bob)
    page = officer_client.get(f"/compliance/requests/{erasure.id}/").content.decode()
    assert "asks for the personal data held about them to be erased" in page
    assert " checked" not in page.split("<fieldset>")[1].split("</fieldset>")[0]  # nothing pre-selected
    assert 'class="subject-link"' in page and f'value="{ada.profile_id}"' in page
    _no_raw_keys(page)
    unchosen = officer_client.post(f"/compliance/requests/{erasure.id}/", {"reason": ""})
    assert unchosen.status_code == 400 and b"Choose a decision" in unchosen.content
    erasure.refresh_from_db()
    assert erasure.status == "awaiting_approval"

    DataSubjectRequest.objects.filter(id=access.id).update(
        status="completed", summary={"found": True, "sections": ["access_log", "consents", "profile"]})
    done = officer_client.get(f"/compliance/requests/{access.id}/").content.decode()
    assert "The person was found." in done and "Included in the export: access log, consents, profile." in done
    assert "Named by the signed-in person" in done
    _no_raw_keys(done)


# --- time zones -----------------------------------------------------------------------------------------


def test_times_carry_their_zone_and_the_viewer_choice_is_remembered(officer_client, ada, bob):
    erasure, _, _ = _requests(ada, bob)
    at = timezone.now().replace(month=1, day=15, hour=12, minute=30)  # winter: CET is UTC+1
    DataSubjectRequest.objects.filter(id=erasure.id).update(received_at=at)
    page = officer_client.get(f"/compliance/requests/{erasure.id}/").content.decode()
    assert f"15 Jan {at.year}, 12:30 UTC" in page
    chosen = officer_client.post("/staff/timezone/", {"timezone": "Europe/Paris",
                                                      "next": f"/compliance/requests/{erasure.id}/"})
    assert chosen.status_code == 302 and chosen["Location"] == f"/compliance/requests/{erasure.id}/"
    assert chosen.cookies["tessera_staff_tz"].value == "Europe/Paris"
    page = officer_client.get(f"/compliance/requests/{erasure.id}/").content.decode()
    assert f"15 Jan {at.year}, 13:30 CET" in page and '<option value="Europe/Paris" selected>' in page
    # Still chosen after signing out and in again (the cookie outlives the session).
    officer_client.post("/staff/logout/")
    assert officer_client.cookies["tessera_staff_tz"].value == "Europe/Paris"
    wrong = officer_client.post("/staff/timezone/", {"timezone": "Mars/Olympus", "next": "https://evil.example/"})
    assert wrong.status_code == 302 and not wrong["Location"].startswith("https://evil")
    assert "tessera_staff_tz" not in wrong.cookies


def test_the_time_zone_form_needs_csrf_and_a_staff_member(officer, ada):
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer)
    assert client.post("/staff/timezone/", {"timezone": "Europe/Paris"}).status_code == 403
    anonymous = Client().post("/staff/timezone/", {"timezone": "Europe/Paris"})
    assert anonymous.status_code == 302 and "tessera_staff_tz" not in anonymous.cookies


def test_date_filters_are_days_in_the_viewer_zone(officer_client, officer):
    # 23:30 UTC on 1 Mar is 00:30 on 2 Mar in Paris: a Paris officer finds it on 2 March.
    year = timezone.now().year
    _entry_at(timezone.now().replace(year=year, month=3, day=1, hour=23, minute=30), action="late_job")
    day = f"{year}-03-02"

    def found() -> bool:
        html = officer_client.get(f"/compliance/access-log/?date_from={day}&date_to={day}&actor=system")
        return 'id="access-log"' in html.content.decode()

    assert not found()
    officer_client.post("/staff/timezone/", {"timezone": "Europe/Paris"})
    assert found()


def test_merged_profiles_on_the_subject_page_are_subject_links(officer_client, ada, bob):
    from cdp.services.merges import profile_merge

    profile_merge(survivor_id=ada.profile_id, absorbed_id=bob.profile_id)
    html = officer_client.post("/compliance/subjects/", {"kind": "profile_id",
                                                         "value": str(ada.profile_id)}).content.decode()
    heading = html.split('id="subject-heading"')[1].split("</p>")[0]
    assert "includes merged profiles" in heading and f'name="value" value="{bob.profile_id}"' in heading
    timeline = html.split('id="consent-timeline"')[1].split("</table>")[0]
    assert "from merged profile" in timeline and f'value="{bob.profile_id}"' in timeline


def test_configuration_changes_filter_by_setting_staff_member_and_dates(officer_client, officer, staff_user):
    from consent.services.retention import retention_rule_set

    other = staff_user("auditor", "compliance")
    retention_rule_set(kind="events", days=30, actor=f"staff:{officer.pk}")
    retention_rule_set(kind="events", days=60, actor=f"staff:{other.pk}")
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)

    def rows(query: str) -> str:
        html = officer_client.get(f"/compliance/configuration/?{query}").content.decode()
        found = html.split('id="configuration-changes"')
        return found[1].split("</table></div>")[0] if len(found) > 1 else ""

    assert rows("").count("Retention rule") == 2
    mine = rows(f"actor=staff:{officer.pk}")
    assert mine.count("Retention rule") == 1 and "officer (staff)" in mine and "auditor" not in mine
    assert rows("action=retention_rule_set").count("Retention rule") == 2
    assert rows("action=notice_published") == ""
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    assert rows(f"date_from={tomorrow}") == ""
