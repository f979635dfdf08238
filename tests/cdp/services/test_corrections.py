"""cdp.services.corrections: operator corrections and rectification write with lineage and leave no copy behind."""

from __future__ import annotations

import pytest

from cdp.core.errors import Conflict
from cdp.models import SourceRecord
from cdp.selectors import profile_unified_view
from cdp.services.corrections import profile_correct, profile_rectify
from cdp.services.profiles import profile_dek
from cdp.services.resolution import profiles_ingest
from cdp.services.source_records import record_payload_read

pytestmark = pytest.mark.django_db


def person(source, external_id, **identifiers):
    attributes = identifiers.pop("attributes", {})
    [result] = profiles_ingest(source=source, records=[
        {"external_id": external_id, "identifiers": identifiers, "attributes": attributes}])
    return result.as_dict()["profile_id"]


def test_a_rectification_sets_with_lineage_and_removes_from_every_record(source_factory):
    shop = source_factory("shop")
    pid = person(shop, "o-1", email="jane@example.com", attributes={"city": "Leeds", "first_name": "Jnae"})
    summary = profile_rectify(profile_id=pid, attributes={"first_name": "Jane", "city": None},
                              identifiers={"phone": "+442079460018"})
    assert summary == {"attributes_set": 1, "attributes_removed": 1, "identifiers_added": 1}
    view = profile_unified_view(profile_id=pid)
    assert view["attributes"]["first_name"] == {**view["attributes"]["first_name"], "value": "Jane",
                                                "source": "operator"}
    assert "city" not in view["attributes"] and view["identifiers"]["phone"] == ["+442079460018"]
    records = SourceRecord.objects.filter(profile_id=pid).select_related("profile__data_key")
    dek = profile_dek(records[0].profile)
    assert all("city" not in record_payload_read(r, dek=dek).get("attributes", {}) for r in records)


def test_a_correction_never_takes_another_persons_identifier(source_factory):
    shop = source_factory("shop")
    jane = person(shop, "o-1", email="jane@example.com")
    person(shop, "o-2", email="john@example.com")
    with pytest.raises(Conflict):
        profile_correct(profile_id=jane, attributes={}, identifiers={"email": "john@example.com"},
                        expected_versions=None)
    assert profile_unified_view(profile_id=jane)["identifiers"] == {"email": ["jane@example.com"]}
