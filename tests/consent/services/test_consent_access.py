"""consent.services.access: the readers write the access log and honour GPC, not the views.

A read made for one person records the Global Privacy Control opt-out its request carried
before it reads (so the answer shows it), once; a listing of several people never records
one for them. No view module records either itself.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from cdp.api.services.api_keys import api_key_create
from cdp.services.resolution import profiles_ingest
from consent.models import AccessKind, AccessLog, ConsentEvent
from consent.selectors import consent_state_list
from consent.services import consent_set
from consent.services.access import Accessor, personal_data_read, subject_data_read

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]
# What records an access or a GPC opt-out: only selectors and services may call these.
AUDIT_WRITERS = {"personal_data_read_event", "personal_data_read", "subject_data_read", "subject_signals_honour",
                 "consent_gpc_signal", "gpc_apply", "gpc_honour", "operator_action_event"}
VIEW_MODULES = ["cdp/api/v1/views", "cdp/webhooks/api", "consent/api", "personalization/api", "web/views"]


@pytest.fixture
def person(source_factory):
    [result] = profiles_ingest(source=source_factory("crm"), records=[
        {"external_id": "1", "identifiers": {"email": "gpc@example.com"}}])
    return uuid.UUID(result.profile_id)


def gpc_events(profile_id) -> int:
    return ConsentEvent.objects.filter(profile_id=profile_id, channel="gpc").count()


def test_a_read_for_one_person_records_the_gpc_opt_out_first_and_once(person):
    consent_set(profile_id=person, purpose="sale_sharing", granted=True)
    reader = Accessor(actor="api_key:abc", gpc=True)
    states = {s["purpose"]: s for s in consent_state_list(profile_id=person, accessor=reader)}
    assert states["sale_sharing"]["granted"] is False  # the answer already shows the opt-out
    consent_state_list(profile_id=person, accessor=reader)
    assert gpc_events(person) == 1
    rows = AccessLog.objects.filter(profile_id=person, kind=AccessKind.READ, actor="api_key:abc")
    assert rows.count() == 2 and rows.first().fields == ["consents"]


def test_without_the_signal_a_read_records_no_opt_out(person):
    consent_set(profile_id=person, purpose="sale_sharing", granted=True)
    subject_data_read(accessor=Accessor(actor="api_key:abc"), profile_id=person, fields=["x"], purpose="test")
    assert gpc_events(person) == 0


def test_a_listing_never_records_an_opt_out_for_the_people_listed(person):
    written = personal_data_read(accessor=Accessor(actor="api_key:abc", gpc=True), profile_ids=[person, person],
                                 fields=["segment_membership", "segment_membership"], purpose="marketing")
    assert written == 1 and gpc_events(person) == 0
    assert AccessLog.objects.get(profile_id=person).fields == ["segment_membership"]


def test_a_recommendations_read_with_sec_gpc_records_the_opt_out(person):
    """The recommendations endpoint is a read made for one person like the profile and its
    consents: before, it ignored the signal (only the views that called gpc_apply honoured it)."""
    consent_set(profile_id=person, purpose="personalization", granted=True)
    _, key = api_key_create(name="reader", scopes=["recommendations:read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get(f"/api/v1/profiles/{person}/recommendations", HTTP_SEC_GPC="1").status_code == 200
    assert gpc_events(person) == 1


def test_no_view_module_writes_an_access_row_or_records_gpc_itself():
    offenders = []
    for folder in VIEW_MODULES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                name = None
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                elif isinstance(node, ast.ImportFrom):
                    name = next((a.name for a in node.names if a.name in AUDIT_WRITERS), None)
                if name in AUDIT_WRITERS:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert not offenders, offenders
