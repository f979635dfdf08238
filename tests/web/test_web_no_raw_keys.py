"""Issue #22, "no raw keys or program output on any page": every page of /compliance/, /ops/
and /me/, rendered over demo-like records (declined and withdrawn consents, requests of every
kind and outcome, staff and system actions with details, failed and warned pipeline runs,
webhook failures, ingestion errors, merges, a campaign), reads as words. The codes may stay
in attributes (a tooltip for support, a form's value), never in the text people read."""

# ruff: noqa: F811 - pytest fixtures are imported from web_helpers and named as arguments

from __future__ import annotations

import html as html_lib
import re

import pytest
from django.test import Client
from django.utils import timezone
from web_helpers import _fresh_cache, ada, bob, officer, officer_client, shop, sign_in, staff_user  # noqa: F401

from consent.purposes import PURPOSES
from consent.selectors import CHANNEL_NAMES, DSR_STATUS_NAMES
from web import labels

pytestmark = pytest.mark.django_db

# Commands an operator types: shown as such (in a monospace span) on purpose.
COMMANDS = {"run_pipeline", "evaluate_segmentation", "evaluate_recommender", "evidence_verify",
            # A release's mechanism cites the OpenDP constructor it used, for an auditor to look up.
            "count_by_categories"}
KNOWN_CODES = {*PURPOSES, *labels.ACTION_LABELS, *labels.STATE_LABELS, *labels.IDENTIFIER_LABELS, *CHANNEL_NAMES,
               *DSR_STATUS_NAMES, *labels.PIPELINE_PROBLEM_LABELS, *labels.STATISTIC_LABELS, *labels.LIMIT_LABELS,
               "recommender_fit", "segments_fit", "segments_assign"}
PROGRAM_OUTPUT = [
    (re.compile(r"\b(?:staff|api_key):\S"), "an actor's code"),
    (re.compile(r"\b(?:True|False|None)\b"), "a Python value"),
    (re.compile(r"\[\s*'|\{\s*'|\[\]|\{\}|\{\s*\""), "a Python or JSON structure"),
    (re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b"), "a snake_case identifier"),
]


def _visible(page: str) -> str:
    body = page.split('<main id="main"', 1)[1].split("</main>")[0] if '<main id="main"' in page \
        else page.split("<body", 1)[-1]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


def _problems(page: str) -> list[str]:
    text = _visible(page)
    found = [f"known code {code!r}" for code in KNOWN_CODES
             if "_" in code and re.search(rf"\b{re.escape(code)}\b", text)]
    for pattern, what in PROGRAM_OUTPUT:
        for match in pattern.finditer(text):
            if match.group(0) not in COMMANDS:
                found.append(f"{what}: {text[max(0, match.start() - 40):match.end() + 40]!r}")
    return found


@pytest.fixture
def records(ada, bob, officer, shop, source_factory, django_capture_on_commit_callbacks):
    """What a demo shop has after a while: every kind of record the pages show."""
    from campaigns.services.campaigns import campaign_create
    from cdp.core.models import OutboxMessage
    from cdp.models import MergeConflict
    from cdp.segment.models import IngestionError
    from cdp.services.merges import profile_merge
    from cdp.webhooks.models import AttemptOutcome, WebhookAttempt, WebhookDelivery, WebhookSubscription
    from consent.models import DataSubjectRequest, DsrApprovalRule
    from consent.notices import notice_publish, purpose_basis_set
    from consent.services.access import operator_action_event
    from consent.services.consents import consent_set
    from consent.services.dsr import dsr_submit
    from personalization.models import PipelineRun, RunStatus, Stage
    from personalization.privacy import consent_rates_release, privacy_budget_limits_change

    consent_set(profile_id=ada.profile_id, purpose="sale_sharing", granted=False, channel="preference_center",
                actor="data_subject")
    consent_set(profile_id=ada.profile_id, purpose="analytics", granted=False, channel="api", actor="api_key:abc")
    DsrApprovalRule.objects.create(type="erasure", requires_approval=True)
    with django_capture_on_commit_callbacks(execute=True):  # carried out as the worker would
        access = dsr_submit(request_type="access", channel="preference_center", actor="data_subject",
                            profile_id=ada.profile_id)
    requests = [
        dsr_submit(request_type="erasure", channel="api", actor="api_key:abc", profile_id=bob.profile_id),
        access,
        dsr_submit(request_type="portability", channel="api", actor="api_key:abc", profile_id=ada.profile_id),
    ]
    assert DataSubjectRequest.objects.get(id=access.id).status == "completed"
    DataSubjectRequest.objects.filter(id=requests[2].id).update(status="failed", summary={"error": "export_failed",
                                                                                          "found": False})
    for action, detail in [("subject_lookup", {"by": "email"}), ("ledger_verified", {"intact": False,
                           "message": "A chain is broken.", "events": 3, "subjects": 2}),
                           ("api_key.created", {"name": "shop", "scopes": ["events:write"]})]:
        operator_action_event(actor=f"staff:{officer.pk}", action=action, profile_id=ada.profile_id
                              if action == "subject_lookup" else None, detail=detail)
    actor = f"staff:{officer.pk}"
    purpose_basis_set(purpose="sale_sharing", basis="legitimate_interest", actor=actor)
    notice_publish(purpose="sale_sharing", texts={"en": ("Sale and sharing", "We share.")}, material=True,
                   actor=actor)
    consent_rates_release(day=timezone.localdate().isoformat())
    privacy_budget_limits_change(dataset="customers", actor=actor, reason="More releases.", epsilon_limit=12)
    PipelineRun.objects.create(status=RunStatus.FAILED, stage=Stage.RECOMMENDER_FIT, active=None, trigger="schedule",
                               errors=[{"stage": "recommender_fit", "chunk": None, "code": "recommender_unavailable",
                                        "message": "The recommender model package is not installed."},
                                       {"stage": "segments_fit", "chunk": None, "code": "segment_definition_reused",
                                        "message": "x", "severity": "warning"}])
    subscription = WebhookSubscription.objects.create(url="https://crm.example.com/hook", events=["consent.changed"],
                                                      secret_cipher=b"s")
    delivery = WebhookDelivery.objects.create(subscription=subscription, attempts=1, status="failed",
                                              message=OutboxMessage.objects.create(topic="consent.changed",
                                                                                   payload={}))
    WebhookAttempt.objects.create(delivery=delivery, number=1, outcome=AttemptOutcome.FAILED, status_code=500,
                                  error="ConnectionRefusedError", started_at=timezone.now())
    IngestionError.objects.create(source=shop, message_type="track", codes=["invalid_timestamp"], message=b"sealed")
    carol = source_factory("app", trust=50)
    from web_helpers import make_customer, recommendations_write

    cy = make_customer(carol, "cy@example.com")
    MergeConflict.objects.create(profile_id=ada.profile_id, other_profiles=[str(bob.profile_id)],
                                 reason="conflicting_source_ids")
    profile_merge(survivor_id=bob.profile_id, absorbed_id=cy.profile_id)
    campaign_create(key="spring", name="Spring sale", actor=f"staff:{officer.pk}", metric={"event": "purchase"},
                    variants=[{"key": "a"}, {"key": "b"}])
    recommendations_write(ada.profile_id, items=[("sku-2", "Teapot")], own=[("sku-1", "Kettle")],
                          segment={"name": "Loyal regulars"})
    return {"requests": requests}


SEEN: list[str] = []  # the pages' text, so each test can say the records were on the pages it swept


def _check(client: Client, path: str, data: dict | None = None) -> list[str]:
    response = client.post(path, data) if data is not None else client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    SEEN.append(_visible(response.content.decode()))
    return [f"{path}: {problem}" for problem in _problems(response.content.decode())]


def _shown(*texts: str) -> None:
    seen = " ".join(" ".join(SEEN).split())
    SEEN.clear()
    for text in texts:
        assert text in seen, text


def test_compliance_pages_read_as_words(officer_client, records, ada):
    paths = ["/compliance/", "/compliance/ledger/", "/compliance/subjects/", "/compliance/requests/?show=all",
             "/compliance/access-log/", "/compliance/budget/", "/compliance/configuration/",
             *(f"/compliance/requests/{r.id}/" for r in records["requests"])]
    problems = [p for path in paths for p in _check(officer_client, path)]
    for kind, value in (("profile_id", str(ada.profile_id)), ("email", "ada@example.com")):
        problems += _check(officer_client, "/compliance/subjects/", {"kind": kind, "value": value})
    assert not problems, "\n".join(problems)
    _shown("Sale and sharing", "Legitimate interest", "Processing failed (Export failed)", "A chain is broken.",
           "Looked the person up in the console", "Preference center", "More releases.", "Consent rates per purpose",
           "The person was found.")


def test_ops_pages_read_as_words(staff_user, records):
    client = Client()
    client.force_login(staff_user("ops-and-campaigns", "operator"))
    paths = ["/ops/", "/ops/merges/", "/ops/recommendations/", "/ops/webhooks/", "/ops/ingestion/",
             "/ops/campaigns/", "/ops/campaigns/spring/"]
    problems = [p for path in paths for p in _check(client, path)]
    assert not problems, "\n".join(problems)
    _shown("The recommender could not run", "The previous segment definitions were reused", "ConnectionRefusedError",
           "Invalid timestamp", "Conflicting source ids", "Spring sale")


def test_me_pages_read_as_words(records, ada):
    client = Client()
    assert not _check(client, "/me/signin/")
    sign_in(client, ada.profile_id)
    access = records["requests"][1]
    problems = [p for path in ("/me/", "/me/data/", "/me/erase/", f"/me/data/requests/{access.id}/summary/")
                for p in _check(client, path)]
    assert not problems, "\n".join(problems)
    _shown("Teapot", "Sale and sharing", "ada@example.com")


def test_the_sweep_finds_raw_keys():
    page = '<main id="main"><p>sale_sharing by staff:1: {&#x27;found&#x27;: True, &#x27;kinds&#x27;: []}</p></main>'
    found = " ".join(_problems(page))
    assert "sale_sharing" in found and "an actor's code" in found and "a Python value" in found
    assert "a Python or JSON structure" in found
    assert not _problems('<main id="main"><p title="sale_sharing">Sale and sharing, by officer (staff)</p></main>')
