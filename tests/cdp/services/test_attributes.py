"""Attribute rows: one fill and one rebuild, for model rows and resolution's in-memory rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import crypto
from cdp.core.crypto_primitives import DecryptionError, new_data_key
from cdp.models import AttributeValue, Profile
from cdp.services.attributes import (
    attribute_field,
    attribute_row_fill,
    attribute_rows_rebuilt,
    attribute_value_read,
    attributes_rebuild,
)
from cdp.services.profiles import profile_dek
from cdp.services.resolution import profiles_ingest
from cdp.services.resolution.rows import AttributeRow, attribute_row_new

START = datetime(2026, 1, 1, tzinfo=UTC)
SOURCES = [uuid.UUID(int=1), uuid.UUID(int=2)]
NAMES = ["city", "tier", "country"]  # country is non-personal in the default settings

records_strategy = st.lists(
    st.tuples(
        st.integers(0, 5),                    # observed_at, in minutes: ties happen
        st.integers(0, 2 ** 32),              # record id
        st.sampled_from(SOURCES),
        st.dictionaries(st.sampled_from(NAMES), st.one_of(st.integers(0, 3), st.sampled_from(["York", "Hull"])),
                        max_size=3),
    ),
    max_size=8, unique_by=lambda r: r[1],
).map(lambda rows: [(START + timedelta(minutes=m), uuid.UUID(int=i), s, a) for m, i, s, a in rows])


def _readable(row, dek) -> tuple:
    return (row.name, row.source_id, row.record_id, row.observed_at, row.is_personal,
            attribute_value_read(row, dek=dek))


@settings(max_examples=150, deadline=None)
@given(records=records_strategy)
def test_a_rebuild_keeps_the_newest_value_per_name_and_source(records):
    profile_id, dek = uuid.uuid4(), new_data_key()
    expected = {}
    for observed_at, record_id, source_id, attributes in records:
        for name, value in attributes.items():
            best = expected.get((name, source_id))
            if best is None or (observed_at, record_id) > (best[0], best[1]):
                expected[(name, source_id)] = (observed_at, record_id, value)
    model_rows = attribute_rows_rebuilt(profile_id=profile_id, records=records, dek=dek)
    memory_rows = attribute_rows_rebuilt(profile_id=profile_id, records=list(reversed(records)), dek=dek,
                                         new_row=attribute_row_new, cipher=crypto.ValueCipher())
    assert all(isinstance(row, AttributeValue) for row in model_rows)
    assert all(isinstance(row, AttributeRow) for row in memory_rows)
    want = {(name, source_id, record_id, observed_at, name != "country", value)
            for (name, source_id), (observed_at, record_id, value) in expected.items()}
    assert {_readable(row, dek) for row in model_rows} == want
    assert {_readable(row, dek) for row in memory_rows} == want


def test_fill_encrypts_personal_values_only_and_binds_them_to_profile_and_name():
    dek, profile_id = new_data_key(), uuid.uuid4()
    for cipher in (None, crypto.ValueCipher()):
        city = AttributeValue(profile_id=profile_id, name="city", source_id=SOURCES[0])
        attribute_row_fill(city, dek=dek, value="York", record_id=None, observed_at=START, cipher=cipher)
        assert city.is_personal and city.value_plain is None and b"York" not in bytes(city.value_cipher)
        assert crypto.decrypt_value(dek, owner_id=profile_id, field=attribute_field("city"),
                                    ciphertext=city.value_cipher) == "York"
        with pytest.raises(DecryptionError):  # another field's context
            crypto.decrypt_value(dek, owner_id=profile_id, field=attribute_field("tier"), ciphertext=city.value_cipher)
        country = AttributeRow(None, profile_id, "country", SOURCES[0])
        attribute_row_fill(country, dek=dek, value="GB", record_id=None, observed_at=START, cipher=cipher)
        assert (country.is_personal, country.value_cipher, country.value_plain) == (False, None, "GB")


@pytest.mark.django_db
def test_resolution_upserts_values_and_a_rebuild_reads_the_current_records(source_factory):
    """Record by record, a newer observation wins and an older one never overwrites; a
    rebuild (after a merge or an unmerge) starts again from the current records only."""
    crm, shop = source_factory("crm", trust=90), source_factory("shop", trust=50)
    ada = {"email": "ada@example.com"}
    profiles_ingest(source=crm, records=[
        {"external_id": "c1", "identifiers": ada, "attributes": {"city": "York", "tier": 2},
         "observed_at": "2026-01-03T00:00:00Z"}])
    profiles_ingest(source=shop, records=[
        {"external_id": "s1", "identifiers": ada, "attributes": {"city": "Hull", "country": "GB"},
         "observed_at": "2026-01-01T00:00:00Z"},
        {"external_id": "s2", "identifiers": ada, "attributes": {"city": "Leeds"},
         "observed_at": "2026-01-02T00:00:00Z"},
        {"external_id": "s1", "identifiers": ada, "attributes": {"city": "Bath", "country": "FR"},
         "observed_at": "2025-12-01T00:00:00Z"}])  # a new version, but older than s2's value
    profiles_ingest(source=crm, records=[
        {"external_id": "c1", "identifiers": ada, "attributes": {"tier": 3},
         "observed_at": "2026-01-04T00:00:00Z"}])  # tier changes; city stays from the old version

    profile = Profile.objects.get()
    dek = profile_dek(profile)

    def snapshot():
        # The lineage as the observation time of the record a value came from (each record's is distinct).
        return sorted((a.name, a.source.key, repr(attribute_value_read(a, dek=dek)), a.record.observed_at.date(),
                       a.observed_at) for a in AttributeValue.objects.filter(profile=profile).select_related(
                           "source", "record"))

    stored = snapshot()
    assert [(name, source, value) for name, source, value, _, _ in stored] == [
        ("city", "crm", "'York'"), ("city", "shop", "'Leeds'"), ("country", "shop", "'GB'"), ("tier", "crm", "3")]
    attributes_rebuild(profile_id=profile.id, dek=dek)
    # c1's current version has no city; s1's current version says FR (its older GB is gone).
    assert [(name, source, value, str(record)) for name, source, value, record, _ in snapshot()] == [
        ("city", "shop", "'Leeds'", "2026-01-02"), ("country", "shop", "'FR'", "2025-12-01"),
        ("tier", "crm", "3", "2026-01-04")]
