"""cdp.selectors: the one identifier → profile lookup, as the API, the console and consent's handlers use it."""

from __future__ import annotations

import pytest

from cdp.selectors import profile_ids_by_identifier, profile_ids_by_identifiers
from cdp.services.resolution import profiles_ingest
from consent import registry

pytestmark = pytest.mark.django_db


def resolve(identifiers, source=None):
    """What consent gets when it asks the profile domain (a DSR or a consent batch filed by identifier)."""
    return [pid for found in registry.run(registry.RESOLVE, identifiers=identifiers, source=source) for pid in found]


def test_every_caller_gets_the_same_answer(source_factory):
    crm = source_factory("crm")
    [jane] = profiles_ingest(source=crm, records=[{"external_id": "c-1", "identifiers": {
        "email": "Jane@Example.com", "crm_id": "C1"}}])
    jane_id = jane.as_dict()["profile_id"]
    cases = [
        ({"email": " JANE@example.COM "}, None, [jane_id]),       # normalized the same way
        ({"email": "jane@example.com"}, "crm", [jane_id]),        # a global kind ignores the source
        ({"crm_id": "C1"}, "crm", [jane_id]),                     # a scoped kind is looked up in its source
        ({"crm_id": "C1"}, "shop", []),
        ({"email": "someone@example.com"}, None, []),
        ({"email": "null"}, None, []),                            # junk names nobody
    ]
    for identifiers, source, expected in cases:
        [(kind, value)] = identifiers.items()
        assert [str(p) for p in profile_ids_by_identifier(kind=kind, value=value, source_key=source)] == expected
        assert [str(p) for p in resolve(identifiers, source)] == expected, identifiers


def test_a_malformed_identifier_names_nobody_unless_strict(source_factory):
    source_factory("crm")
    assert profile_ids_by_identifier(kind="email", value="not an address") == []
    assert profile_ids_by_identifiers([("fax", "123")]) == {}
    with pytest.raises(ValueError, match="invalid_email"):
        profile_ids_by_identifiers([("email", "not an address")], strict=True)
    with pytest.raises(ValueError, match="unknown_identifier"):
        resolve({"fax": "123"})


def test_a_merged_person_is_found_once_by_any_identifier(source_factory):
    shop = source_factory("shop")
    [first] = profiles_ingest(source=shop, records=[{"external_id": "o-1", "identifiers": {"email": "a@example.com"}}])
    [second] = profiles_ingest(source=shop, records=[{"external_id": "o-2", "identifiers": {"phone": "+442079460018"}}])
    profiles_ingest(source=shop, records=[{"external_id": "o-3", "identifiers": {
        "email": "a@example.com", "phone": "+442079460018"}}])
    found = profile_ids_by_identifiers([("email", "a@example.com"), ("phone", "+442079460018")])
    assert len(set(found.values())) == 1  # merged: both name the survivor
    assert resolve({"email": "a@example.com", "phone": "+442079460018"}) == sorted(set(found.values()), key=str)
