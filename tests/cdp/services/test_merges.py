"""Moving rows between profiles: one implementation for profile_merge, merge_undo and
the merges identity resolution decides in memory, so both paths store the same rows."""

from __future__ import annotations

import contextlib
import uuid

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp import crypto
from cdp.core.crypto_primitives import DecryptionError, new_data_key
from cdp.models import AttributeValue, Identity, Merge, Profile, SourceRecord
from cdp.services import resolution
from cdp.services.attributes import attribute_value_read
from cdp.services.merges import profile_merge
from cdp.services.profiles import identity_value_encrypt, identity_value_move, identity_value_read, profile_dek
from cdp.services.resolution import profiles_ingest
from cdp.services.resolution.rows import RecordRow
from cdp.services.source_records import record_payload_move, record_payload_read, record_payload_write
from cdp.services.sources import source_create

pytestmark = pytest.mark.django_db


def test_a_moved_row_reads_under_its_new_owner_only_whether_its_plaintext_was_known_or_not():
    old_owner, new_owner, old_dek, new_dek = uuid.uuid4(), uuid.uuid4(), new_data_key(), new_data_key()
    payload = {"identifiers": {"email": "a@example.com"}, "attributes": {"city": "York"}}
    for cipher in (None, crypto.ValueCipher()):
        read, known = (RecordRow(uuid.uuid4(), None, "k", old_owner, "attached", "", True, None, stored=True)
                       for _ in range(2))
        for row in (read, known):
            record_payload_write(row, payload, dek=old_dek, cipher=cipher)
        record_payload_move(read, old_dek=old_dek, new_profile_id=new_owner, new_dek=new_dek, cipher=cipher)
        record_payload_move(known, payload=payload, new_profile_id=new_owner, new_dek=new_dek, cipher=cipher)
        for row in (read, known):
            assert row.profile_id == new_owner and record_payload_read(row, dek=new_dek) == payload
            row.profile_id = old_owner  # the old owner's context no longer opens it, nor the old key
            with pytest.raises(DecryptionError):
                record_payload_read(row, dek=new_dek)

        identity = Identity(profile_id=old_owner, value=identity_value_encrypt(dek=old_dek, profile_id=old_owner,
                                                                               value="a@example.com"))
        identity_value_move(identity, old_dek=old_dek, new_profile_id=new_owner, new_dek=new_dek, cipher=cipher)
        assert identity_value_read(identity, dek=new_dek) == "a@example.com"
        with pytest.raises(DecryptionError):
            identity_value_read(identity, dek=old_dek)


def test_profile_merge_records_its_reason_trigger_and_what_moved(source_factory):
    shop = source_factory("shop")
    a, b = (profiles_ingest(source=shop, records=[{"external_id": name, "identifiers": {"email": f"{name}@x.org"},
                                                   "attributes": {name: name}}])[0] for name in ("a", "b"))
    trigger = SourceRecord.objects.get(profile_id=b.profile_id)
    merge = profile_merge(survivor_id=uuid.UUID(a.profile_id), absorbed_id=uuid.UUID(b.profile_id),
                          reason="reviewed_link", trigger_record_id=trigger.id)
    assert (merge.reason, merge.trigger_record_id) == ("reviewed_link", trigger.id)
    assert merge.moved_records == [str(trigger.id)] and merge.absorbed_profiles == [b.profile_id]
    assert merge.moved_identities == list(Identity.objects.filter(record=trigger).values_list("id", flat=True))
    survivor = Profile.objects.get(pk=a.profile_id)
    dek = profile_dek(survivor)
    assert Profile.objects.get(pk=b.profile_id).merged_into_id == survivor.id
    assert sorted((v.name, attribute_value_read(v, dek=dek)) for v in AttributeValue.objects.filter(
        profile=survivor)) == [("a", "a"), ("b", "b")]
    trigger.refresh_from_db()
    assert record_payload_read(trigger, dek=dek)["attributes"] == {"b": "b"}  # re-encrypted for the survivor


# --- the batch path and profile_merge store the same rows -------------------------------------------

EMAILS = [f"p{i}@example.com" for i in range(4)]
PHONES = ["+442079460018", "+14155550132", "+33142685300"]

# Distinct observation days: two equal times tie-break on random record ids (in either path).
streams = st.lists(st.fixed_dictionaries({
    "source": st.sampled_from(["crm", "shop"]),
    "external": st.integers(0, 6),
    "identifiers": st.fixed_dictionaries({}, optional={"email": st.sampled_from(EMAILS),
                                                       "phone": st.sampled_from(PHONES)}),
    "attributes": st.dictionaries(st.sampled_from(["city", "tier", "country"]), st.integers(0, 3), max_size=2),
    "day": st.integers(1, 28),
}), min_size=1, max_size=16, unique_by=lambda r: r["day"])


@contextlib.contextmanager
def _rolled_back():
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


def _stored_rows(batches, *, defer: bool) -> dict:
    """Run the batches with merges decided in memory (defer) or through profile_merge, and
    read back every active profile's identities and attributes, named by content."""
    original = resolution._Resolver.defer_merges
    resolution._Resolver.defer_merges = defer
    try:
        with _rolled_back():
            sources = {key: source_create(key=key, name=key, kind="first_party", trust=trust)[0]
                       for key, trust in (("crm", 90), ("shop", 50))}
            statuses = []
            for batch in batches:
                for key in ("crm", "shop"):
                    statuses += [(key, r.status) for r in profiles_ingest(source=sources[key], records=[
                        {"external_id": f"r{r['external']}", "identifiers": r["identifiers"],
                         "attributes": r["attributes"], "observed_at": f"2026-01-{r['day']:02d}T00:00:00Z"}
                        for r in batch if r["source"] == key])]
            return {"statuses": statuses, "merges": Merge.objects.count(), "profiles": _profiles()}
    finally:
        resolution._Resolver.defer_merges = original


def _profiles() -> set:
    """Each active profile as (its identities, its attribute values, its records), every
    row named by its content and its record's, never by ids (each run makes new ones)."""
    record_name = {r.id: (r.source.key, r.observed_at, r.is_current)
                   for r in SourceRecord.objects.select_related("source")}

    def identity(row, dek) -> tuple:
        return (row.kind, row.namespace, row.blind_index, identity_value_read(row, dek=dek),
                record_name[row.record_id], row.source.key, row.assurance, row.priority)

    def attribute(row, dek) -> tuple:
        return (row.name, row.source.key, repr(attribute_value_read(row, dek=dek)), row.is_personal,
                record_name[row.record_id], row.observed_at)

    profiles = set()
    for profile in Profile.objects.filter(status="active").select_related("data_key"):
        dek = profile_dek(profile)
        identities = Identity.objects.filter(profile=profile).select_related("source")
        attributes = AttributeValue.objects.filter(profile=profile).select_related("source")
        records = SourceRecord.objects.filter(profile=profile).values_list("id", flat=True)
        profiles.add((frozenset(identity(row, dek) for row in identities),
                      frozenset(attribute(row, dek) for row in attributes),
                      frozenset(record_name[record_id] for record_id in records)))
    return profiles


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(stream=streams, split=st.integers(0, 16))
def test_merges_decided_in_a_batch_store_the_rows_profile_merge_stores(stream, split):
    batches = [stream[:split], stream[split:]]
    assert _stored_rows(batches, defer=True) == _stored_rows(batches, defer=False)


def test_a_merge_in_a_later_batch_with_older_and_newer_values_stores_the_same_rows_both_ways():
    first = [{"source": "shop", "external": 0, "identifiers": {"email": EMAILS[0]}, "attributes": {"city": 1},
              "day": 5},
             {"source": "crm", "external": 1, "identifiers": {"phone": PHONES[0]}, "attributes": {"city": 2,
                                                                                               "country": 1},
              "day": 3}]
    second = [{"source": "shop", "external": 2, "identifiers": {"email": EMAILS[0], "phone": PHONES[0]},
               "attributes": {"city": 3}, "day": 1},  # older than what the shop said before
              {"source": "shop", "external": 0, "identifiers": {"email": EMAILS[0]}, "attributes": {"tier": 0},
               "day": 9}]
    fast = _stored_rows([first, second], defer=True)
    assert fast["merges"] == 1 and len(fast["profiles"]) == 1
    assert fast == _stored_rows([first, second], defer=False)
