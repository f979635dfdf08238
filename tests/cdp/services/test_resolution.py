"""Identity resolution scenarios: new, attach, merges, protection, unmerge, idempotence."""

from __future__ import annotations

import pytest

from cdp.models import Identity, Merge, MergeConflict, Profile, ProfileStatus, SourceRecord
from cdp.selectors import profile_unified_view
from cdp.services.merges import merge_undo
from cdp.services.records import payload_digest, payload_digest_legacy
from cdp.services.resolution import profiles_ingest
from consent.services import consent_set

pytestmark = pytest.mark.django_db


def ingest(source, *records):
    return [r.as_dict() for r in profiles_ingest(source=source, records=list(records))]


def rec(external_id, **identifiers):
    attributes = identifiers.pop("attributes", {})
    observed_at = identifiers.pop("observed_at", None)
    record = {"external_id": external_id, "identifiers": identifiers, "attributes": attributes}
    if observed_at:
        record["observed_at"] = observed_at
    return record


def live_profiles():
    return Profile.objects.filter(status=ProfileStatus.ACTIVE)


def test_new_record_creates_a_profile_with_encrypted_identity(source_factory):
    shop = source_factory("shop")
    [result] = ingest(shop, rec("o-1", email="Jane@Example.com", attributes={"first_name": "Jane"}))
    assert result["status"] == "created" and result["errors"] == []
    view = profile_unified_view(profile_id=result["profile_id"])
    assert view["identifiers"] == {"email": ["jane@example.com"]}
    assert view["attributes"]["first_name"]["value"] == "Jane"
    assert view["attributes"]["first_name"]["source"] == "shop"
    identity = Identity.objects.get()
    assert b"jane" not in bytes(identity.value)


def test_a_second_record_with_an_email_variant_attaches(source_factory):
    shop, crm = source_factory("shop"), source_factory("crm")
    [first] = ingest(shop, rec("o-1", email="jane@example.com"))
    [second] = ingest(crm, rec("c-1", email="  JANE@Example.COM ", crm_id="C9"))
    assert second["status"] == "updated"
    assert second["profile_id"] == first["profile_id"]
    assert live_profiles().count() == 1
    view = profile_unified_view(profile_id=first["profile_id"])
    assert view["identifiers"] == {"crm_id": ["C9"], "email": ["jane@example.com"]}


def test_two_profiles_merge_when_a_record_links_them(source_factory):
    shop = source_factory("shop")
    [a] = ingest(shop, rec("o-1", email="a@example.com"))
    [b] = ingest(shop, rec("o-2", phone="+442079460018"))
    [link] = ingest(shop, rec("o-3", email="a@example.com", phone="+44 20 7946 0018"))
    assert link["status"] == "merged"
    assert link["profile_id"] == a["profile_id"]
    absorbed = Profile.objects.get(pk=b["profile_id"])
    assert absorbed.status == ProfileStatus.MERGED and str(absorbed.merged_into_id) == a["profile_id"]
    assert profile_unified_view(profile_id=b["profile_id"]) == {"id": b["profile_id"],
                                                                "merged_into": a["profile_id"]}
    assert set(SourceRecord.objects.values_list("profile_id", flat=True)) == {absorbed.merged_into_id}


def test_three_profiles_merge_transitively_through_a_chain(source_factory):
    shop, crm = source_factory("shop"), source_factory("crm", trust=90)
    [a] = ingest(shop, rec("o-1", email="a@example.com"))
    ingest(shop, rec("o-2", phone="+14155550132"))
    ingest(crm, rec("c-1", crm_id="C1"))
    ingest(shop, rec("o-3", email="a@example.com", phone="+1 415 555 0132"))
    [last] = ingest(crm, rec("c-2", crm_id="C1", phone="(415) 555-0132", attributes={"country": "US"}))
    assert last["status"] == "merged"
    assert live_profiles().count() == 1
    assert Merge.objects.count() == 2
    survivor = live_profiles().get()
    assert str(survivor.id) == a["profile_id"]
    assert Identity.objects.filter(profile=survivor).count() == 3


def test_two_crm_ids_of_one_source_never_merge(source_factory):
    crm = source_factory("crm")
    [first] = ingest(crm, rec("c-1", crm_id="C1", email="shared@example.com"))
    [second] = ingest(crm, rec("c-2", crm_id="C2", email="shared@example.com"))
    assert second["status"] == "conflict"
    assert second["profile_id"] != first["profile_id"]
    conflict = MergeConflict.objects.get()
    assert conflict.reason == "conflicting_source_ids"
    assert conflict.other_profiles == [first["profile_id"]]
    assert live_profiles().count() == 2


def test_a_record_naming_two_crm_profiles_is_attached_to_its_own_and_recorded(source_factory):
    crm = source_factory("crm")
    [one] = ingest(crm, rec("c-1", crm_id="C1"))
    [two] = ingest(crm, rec("c-2", crm_id="C2", email="two@example.com"))
    [result] = ingest(crm, rec("c-3", crm_id="C1", email="two@example.com"))
    assert result["status"] == "conflict"
    assert result["profile_id"] == one["profile_id"]
    assert MergeConflict.objects.get().other_profiles == [two["profile_id"]]


def test_unmerge_restores_both_profiles_and_re_resolves_later_records(source_factory):
    shop = source_factory("shop")
    [a] = ingest(shop, rec("o-1", email="a@example.com", attributes={"first_name": "Ann"}))
    [b] = ingest(shop, rec("o-2", phone="+442079460018", attributes={"first_name": "Bob"}))
    ingest(shop, rec("o-3", email="a@example.com", phone="+442079460018"))
    # After the merge, one record names only B's phone, another only A's email.
    [later_b] = ingest(shop, rec("o-4", phone="+442079460018", attributes={"city": "Leeds"}))
    ingest(shop, rec("o-5", email="a@example.com", attributes={"city": "York"}))
    assert later_b["profile_id"] == a["profile_id"]

    merge = Merge.objects.get()
    merge_undo(merge_id=merge.id)

    view_a = profile_unified_view(profile_id=a["profile_id"])
    view_b = profile_unified_view(profile_id=b["profile_id"])
    assert view_b["identifiers"] == {"phone": ["+442079460018"]}
    assert view_b["attributes"]["first_name"]["value"] == "Bob"
    assert view_b["attributes"]["city"]["value"] == "Leeds"
    assert view_a["identifiers"] == {"email": ["a@example.com"]}
    assert view_a["attributes"]["city"]["value"] == "York"
    # The linking record names both; the pair is now blocked, so it conflicts instead.
    [again] = ingest(shop, rec("o-6", email="a@example.com", phone="+442079460018"))
    assert again["status"] == "conflict"
    assert live_profiles().count() == 2


def test_unmerge_twice_is_refused(source_factory):
    from cdp.core.errors import Conflict

    shop = source_factory("shop")
    ingest(shop, rec("o-1", email="a@example.com"), rec("o-2", phone="+442079460018"),
           rec("o-3", email="a@example.com", phone="+442079460018"))
    merge = Merge.objects.get()
    merge_undo(merge_id=merge.id)
    with pytest.raises(Conflict):
        merge_undo(merge_id=merge.id)


def test_the_same_record_twice_changes_nothing(source_factory):
    shop = source_factory("shop")
    record = rec("o-1", email="a@example.com", attributes={"first_name": "Ann"})
    [first] = ingest(shop, record)
    counts = (SourceRecord.objects.count(), Identity.objects.count(), Profile.objects.get().version)
    [second] = ingest(shop, dict(record))
    assert second == {**first, "status": "unchanged"}
    assert (SourceRecord.objects.count(), Identity.objects.count(), Profile.objects.get().version) == counts


def test_a_record_stored_with_a_digest_of_the_earlier_format_is_still_recognized(source_factory):
    shop = source_factory("shop")
    record = rec("o-1", email="a@example.com", phone="+442071234567", attributes={"first_name": "Zoë", "n": 1})
    [first] = ingest(shop, record)
    stored = SourceRecord.objects.get()
    content = {"external_id": "o-1", "identifiers": {"email": "a@example.com", "phone": "+442071234567"},
               "attributes": {"first_name": "Zoë", "n": 1}}
    assert stored.payload_digest == payload_digest("shop", content)
    legacy = payload_digest_legacy("shop", content)
    assert legacy != stored.payload_digest
    SourceRecord.objects.filter(pk=stored.pk).update(payload_digest=legacy)  # as written before v2
    [second] = ingest(shop, dict(record))
    assert second == {**first, "status": "unchanged"}
    [third] = ingest(shop, rec("o-1", email="a@example.com", attributes={"first_name": "Zoe"}))
    assert third["status"] == "updated" and SourceRecord.objects.count() == 2


def test_a_changed_record_keeps_its_previous_version(source_factory):
    shop = source_factory("shop")
    ingest(shop, rec("o-1", email="a@example.com", attributes={"city": "York"}))
    [second] = ingest(shop, rec("o-1", email="a@example.com", attributes={"city": "Leeds"}))
    assert second["status"] == "updated"
    assert SourceRecord.objects.count() == 2
    assert SourceRecord.objects.filter(is_current=True).count() == 1
    assert profile_unified_view(profile_id=second["profile_id"])["attributes"]["city"]["value"] == "Leeds"


def test_junk_identifiers_are_dropped_and_a_record_without_others_is_rejected(source_factory):
    shop = source_factory("shop")
    results = ingest(
        shop,
        rec("o-1", email="test@test.com", phone="0000000000", anonymous_id="undefined"),
        rec("o-2", email="null", crm_id="-1", anonymous_id="dev-123"),
    )
    assert results[0]["status"] == "rejected"
    assert results[0]["errors"][0]["code"] == "no_usable_identifier"
    assert results[1]["status"] == "created"
    assert Identity.objects.get().kind == "anonymous_id"


def test_a_bad_record_is_rejected_alone_and_explained(source_factory):
    shop = source_factory("shop")
    results = ingest(shop, rec("o-1", email="a@example.com"), {"identifiers": {"email": "not-an-email"}},
                     rec("o-3", phone="+442079460018"))
    assert [r["status"] for r in results] == ["created", "rejected", "created"]
    fields = {(e["field"], e["code"]) for e in results[1]["errors"]}
    assert ("external_id", "required") in fields
    assert any(f == "identifiers.email" for f, _ in fields)
    assert "not-an-email" not in str(results[1]["errors"])
    assert SourceRecord.objects.count() == 2


def test_third_party_records_are_held_until_a_first_party_record_names_the_person(source_factory):
    broker = source_factory("broker", kind="third_party", trust=10)
    shop = source_factory("shop")
    [held] = ingest(broker, rec("b-1", email="a@example.com", attributes={"income_band": "high"}))
    assert held == {"index": 0, "status": "held", "profile_id": None, "errors": []}
    assert Profile.objects.count() == 0
    [joined] = ingest(shop, rec("o-1", email="A@example.com", attributes={"first_name": "Ann"}))
    assert joined["status"] == "created"
    record = SourceRecord.objects.get(source=broker)
    assert str(record.profile_id) == joined["profile_id"] and record.held_key_id is None
    # Held data joins the unified view only with consent to enrichment.
    view = profile_unified_view(profile_id=joined["profile_id"])
    assert "income_band" not in view["attributes"]
    consent_set(profile_id=record.profile_id, purpose="enrichment", granted=True)
    view = profile_unified_view(profile_id=joined["profile_id"])
    assert view["attributes"]["income_band"] == {
        "value": "high", "source": "broker", "record_id": str(record.id),
        "observed_at": record.observed_at.isoformat()}
    consent_set(profile_id=record.profile_id, purpose="enrichment", granted=False)
    assert "income_band" not in profile_unified_view(profile_id=joined["profile_id"])["attributes"]


def test_held_and_matched_in_the_same_batch(source_factory):
    broker = source_factory("broker", kind="third_party", trust=10)
    shop = source_factory("shop")
    ingest(broker, rec("b-1", email="a@example.com", attributes={"interests": ["hiking"]}))
    ingest(broker, rec("b-2", email="b@example.com"))
    results = ingest(shop, rec("o-1", email="a@example.com"), rec("o-2", email="b@example.com"))
    assert [r["status"] for r in results] == ["created", "created"]
    assert SourceRecord.objects.filter(status="held").count() == 0


def test_survivorship_prefers_trust_then_recency(source_factory):
    crm = source_factory("crm", trust=90)
    shop = source_factory("shop", trust=50)
    [p] = ingest(crm, rec("c-1", email="a@example.com", attributes={"first_name": "Annabel"},
                          observed_at="2026-01-01T00:00:00Z"))
    ingest(shop, rec("o-1", email="a@example.com", attributes={"first_name": "Ann", "city": "York"},
                     observed_at="2026-06-01T00:00:00Z"))
    ingest(shop, rec("o-2", email="a@example.com", attributes={"city": "Leeds"},
                     observed_at="2026-07-01T00:00:00Z"))
    ingest(shop, rec("o-3", email="a@example.com", attributes={"city": "Hull"},
                     observed_at="2026-03-01T00:00:00Z"))
    attributes = profile_unified_view(profile_id=p["profile_id"])["attributes"]
    assert attributes["first_name"]["value"] == "Annabel" and attributes["first_name"]["source"] == "crm"
    assert attributes["city"]["value"] == "Leeds"


def test_identifier_caps_let_the_lowest_priority_yield(source_factory, settings):
    settings.TESSERA_IDENTIFIER_CAPS = {**settings.TESSERA_IDENTIFIER_CAPS, "email": 2}
    shop = source_factory("shop", trust=50)
    web = source_factory("web", trust=10)
    [p] = ingest(shop, rec("o-1", email="one@example.com", crm_id="S1"))
    ingest(shop, rec("o-2", email="two@example.com", crm_id="S1"))
    [low] = ingest(web, rec("w-1", email="three@example.com", anonymous_id="dev-1"))
    assert low["profile_id"] != p["profile_id"]  # a new person: no shared identifier
    ingest(web, rec("w-2", email="three@example.com", anonymous_id="dev-1", crm_id="W1"))
    [high] = ingest(shop, rec("o-3", email="four@example.com", crm_id="S1"))
    emails = profile_unified_view(profile_id=high["profile_id"])["identifiers"]["email"]
    assert len(emails) == 2 and "four@example.com" in emails


def test_an_erased_persons_records_are_suppressed(source_factory):
    from cdp.services.erasure import profile_erase

    shop = source_factory("shop")
    [p] = ingest(shop, rec("o-1", email="gone@example.com", phone="+442079460018"))
    profile_erase(profile_id=p["profile_id"])
    results = ingest(shop, rec("o-9", email="GONE@example.com"), rec("o-10", phone="020 7946 0018",
                                                                       attributes={"country": "GB"}))
    assert [r["status"] for r in results] == ["suppressed", "suppressed"]
    assert SourceRecord.objects.count() == 0
    assert Profile.objects.get().status == ProfileStatus.ERASED
