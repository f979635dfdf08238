"""References the database does not enforce: listed, checked, and reported."""

from __future__ import annotations

import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from cdp.integrity import dangling_references, unconstrained_relations
from cdp.models import AttributeValue, Event, Identity, Merge, Profile, ProfileStatus, Source, SourceRecord
from cdp.services.erasure import profile_erase
from cdp.services.events import events_ingest
from cdp.services.merges import merge_undo
from cdp.services.resolution import profiles_ingest

pytestmark = pytest.mark.django_db


def test_only_the_high_volume_references_go_unenforced():
    relations = {f"{model._meta.label}.{field.name}" for model, field in unconstrained_relations()}
    assert relations == {
        "cdp.Profile.data_key", "cdp.SourceRecord.source", "cdp.SourceRecord.profile", "cdp.Identity.profile",
        "cdp.Identity.record", "cdp.Identity.source", "cdp.AttributeValue.profile", "cdp.AttributeValue.source",
        "cdp.AttributeValue.record", "cdp.Event.profile", "cdp.Event.source",
    }


def test_ingestion_merges_unmerges_and_erasure_leave_every_reference_intact(source_factory):
    crm, shop = source_factory("crm", trust=90), source_factory("shop", trust=40)
    created = profiles_ingest(source=crm, records=[
        {"external_id": f"c{n}", "identifiers": {"email": f"p{n}@example.com", "crm_id": f"C{n}"} if n > 1
         else {"email": f"p{n}@example.com"}, "attributes": {"first_name": f"N{n}", "country": "GB"}}
        for n in range(6)])
    # One shop record names p0 and p1 together: a merge.
    results = profiles_ingest(source=shop, records=[
        {"external_id": "s1", "identifiers": {"email": "p0@example.com", "phone": "+442079460001",
                                              "anonymous_id": "dev-1"}, "attributes": {"city": "York"}},
        {"external_id": "s2", "identifiers": {"phone": "+442079460001", "email": "p1@example.com"}}])
    assert [r.status for r in results] == ["updated", "merged"]
    accepted = events_ingest(source=shop, events=[
        {"profile": {"email": f"p{n}@example.com"}, "type": "view", "item_id": "sku-1"} for n in range(6)]
        + [{"profile": {"anonymous_id": "new-visitor"}, "type": "view", "item_id": "sku-2"}])
    assert {r.status for r in accepted} == {"accepted"}
    merge_undo(merge_id=Merge.objects.get().id)
    erased = profile_erase(profile_id=created[3].profile_id)
    assert erased["events"] == 1 and erased["attributes"] == 2
    assert Event.objects.count() == 6 and AttributeValue.objects.exists()
    assert dangling_references() == {}
    call_command("check_integrity")


@pytest.mark.parametrize("undo_first", [False, True])
def test_erasing_merged_people_leaves_no_identity_or_attribute_naming_a_deleted_record(source_factory, undo_first):
    # Identities and attribute values name the record that introduced them without an index
    # or an on_delete: erasure must delete every row that names one of the erased records.
    crm, shop = source_factory("crm", trust=90), source_factory("shop", trust=40)
    profiles_ingest(source=crm, records=[
        {"external_id": f"c{n}", "identifiers": {"email": f"p{n}@example.com"},
         "attributes": {"first_name": f"N{n}"}} for n in range(2)])
    profiles_ingest(source=shop, records=[
        {"external_id": "s1", "identifiers": {"email": "p0@example.com", "phone": "+442079460001"},
         "attributes": {"city": "York"}}])
    [merged] = profiles_ingest(source=shop, records=[
        {"external_id": "s2", "identifiers": {"phone": "+442079460001", "email": "p1@example.com"},
         "attributes": {"city": "Leeds"}}])
    assert merged.status == "merged"
    if undo_first:
        merge_undo(merge_id=Merge.objects.get().id)
    # The survivor (both people while merged; only p0's after the undo) is erased.
    profile_erase(profile_id=Merge.objects.get().survivor_id)
    left = Profile.objects.filter(status=ProfileStatus.ACTIVE)
    assert left.count() == (1 if undo_first else 0)
    assert Identity.objects.filter(profile__in=left).exists() == undo_first
    assert AttributeValue.objects.filter(profile__in=left).exists() == undo_first
    assert dangling_references() == {}


def test_a_row_naming_a_missing_target_is_found_and_named(source_factory, capsys):
    source = source_factory("web")
    Event.objects.create(profile_id=uuid.uuid4(), origin_profile_id=uuid.uuid4(), source=source, type="view",
                         item_id="sku-1", occurred_at=timezone.now())
    assert dangling_references() == {"cdp.Event.profile": 1}
    with pytest.raises(CommandError, match=r"cdp\.Event\.profile \(1 rows"):
        call_command("check_integrity")
    Event.objects.all().delete()  # leave the database as the suite's own check expects it


def test_deleting_a_source_still_refuses_while_rows_name_it(source_factory):
    from django.db.models import ProtectedError

    source = source_factory("crm")
    profiles_ingest(source=source, records=[{"external_id": "c1", "identifiers": {"email": "a@example.com"},
                                             "attributes": {"first_name": "Ann"}}])
    with pytest.raises(ProtectedError):
        Source.objects.filter(pk=source.pk).delete()
    assert SourceRecord.objects.filter(source=source).exists()


def test_the_admin_deletes_only_a_source_that_never_sent_data(source_factory, admin_client):
    used, unused = source_factory("crm"), source_factory("typo")
    profiles_ingest(source=used, records=[{"external_id": "c1", "identifiers": {"email": "a@example.com"}}])
    assert admin_client.get(f"/admin/cdp/source/{used.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/cdp/source/{used.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Source.objects.filter(pk=used.pk).exists()
    assert "delete_selected" not in admin_client.get("/admin/cdp/source/").content.decode()
    response = admin_client.post(f"/admin/cdp/source/{unused.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not Source.objects.filter(pk=unused.pk).exists()
