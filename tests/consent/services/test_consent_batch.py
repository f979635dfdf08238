"""consent.services.batch: the consents batch, checked record by record in the service.

Each bad record is rejected alone with the specific error of each field it gets wrong;
a failure that is not about the record (a handler's bug, an outage) is not swallowed
into a per-record status but stops the batch, so nothing is half-recorded silently.
"""

from __future__ import annotations

import uuid

import pytest

from cdp.services.erasure import profile_erase
from cdp.services.resolution import profiles_ingest
from consent import registry
from consent.models import ConsentEvent
from consent.services.batch import consents_batch_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(source_factory):
    crm = source_factory("crm")
    results = profiles_ingest(source=crm, records=[
        {"external_id": "1", "identifiers": {"email": "ann@example.com", "crm_id": "C-1"}},
        {"external_id": "2", "identifiers": {"email": "bob@example.com"}}])
    return [uuid.UUID(r.profile_id) for r in results]


def record(people, **fields) -> dict:
    return {"profile_id": str(people[0]), "purpose": "marketing", "granted": True, **fields}


def codes(result: dict) -> list[tuple[str, str]]:
    return [(e["field"], e["code"]) for e in result["errors"]]


@pytest.mark.parametrize("fields, expected", [
    ({"purpose": "telepathy"}, [("purpose", "purpose_unknown")]),
    ({"granted": "yes"}, [("granted", "wrong_type")]),
    ({"notice_version": 0}, [("notice_version", "wrong_type")]),
    ({"notice_version": True}, [("notice_version", "wrong_type")]),
    ({"notice_version": 42}, [("notice_version", "notice_unknown")]),
    ({"occurred_at": "yesterday"}, [("occurred_at", "invalid_datetime")]),
    ({"profile_id": "not-a-uuid"}, [("profile_id", "invalid_uuid")]),
    ({"profile_id": None}, [("profile", "required")]),
    ({"profile_id": None, "profile": {"fax": "1"}}, [("profile", "unknown_identifier")]),
    ({"profile_id": None, "profile": {"crm_id": "C-1"}}, [("source", "source_required")]),
    ({"profile_id": None, "profile": {"email": "not an address"}}, [("profile", "invalid_email")]),
    ({"purpose": "telepathy", "granted": 1, "profile_id": "x"},
     [("purpose", "purpose_unknown"), ("granted", "wrong_type"), ("profile_id", "invalid_uuid")]),
])
def test_each_bad_record_is_rejected_alone_with_its_fields_errors(people, fields, expected):
    results = consents_batch_record([record(people, **fields), record(people)], channel="cmp", source=None,
                                    actor="api_key:t")
    assert results[0]["status"] == "rejected" and codes(results[0]) == expected
    assert results[0]["profile_id"] is None and results[0]["event_id"] is None
    assert results[1]["status"] == "recorded" and ConsentEvent.objects.count() == 1


def test_a_record_that_is_not_an_object_is_rejected_alone(people):
    results = consents_batch_record(["x", record(people)], channel="cmp", source=None, actor="t")
    assert codes(results[0]) == [("record", "wrong_type")] and results[1]["status"] == "recorded"


def test_unknown_erased_merged_and_invisible_people(people):
    ann, bob = people
    profile_erase(profile_id=bob)
    visible = lambda ids: {pid for pid in ids if pid != ann}  # noqa: E731 (a key that may not see Ann)
    results = consents_batch_record([
        {"profile_id": str(uuid.uuid4()), "purpose": "marketing", "granted": True},
        {"profile_id": str(bob), "purpose": "marketing", "granted": True},
        {"profile": {"email": "nobody@example.com"}, "purpose": "marketing", "granted": True},
        {"profile": {"email": "ann@example.com"}, "purpose": "marketing", "granted": True},
    ], channel="cmp", source=None, actor="t", visible=visible)
    assert [r["status"] for r in results] == ["unknown_profile"] * 4
    assert all(r["profile_id"] is None and not r["errors"] for r in results)
    assert not ConsentEvent.objects.exists()


def test_a_failure_that_is_not_about_the_record_is_not_swallowed(people):
    """The view caught every exception while finding a record's person; now only the
    profile domain's answers for "nobody" (unknown, erased) become `unknown_profile`."""
    def broken(**_):
        raise RuntimeError("a bug in a handler")

    registry.register(registry.CANONICAL, broken)
    try:
        with pytest.raises(RuntimeError):
            consents_batch_record([record(people)], channel="cmp", source=None, actor="t")
    finally:
        registry.unregister(registry.CANONICAL, broken)
    assert not ConsentEvent.objects.exists()
