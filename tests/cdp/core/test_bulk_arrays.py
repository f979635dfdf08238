"""Array-parameter helpers (cdp.core.bulk): the same rows as the plain ORM filters and
updates they replace, on every database the suite runs on."""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from cdp import crypto
from cdp.core.bulk import any_of, update_mapped
from cdp.models import Event, Profile, ProfileStatus, Suppression
from cdp.services.events import events_ingest
from cdp.services.merges import MergeStep, merges_apply
from cdp.services.profiles import profile_dek
from cdp.services.resolution import profiles_ingest

pytestmark = pytest.mark.django_db


def test_any_of_matches_text_columns_whole_values_only():
    Suppression.objects.create(kind="email", namespace="", blind_index="a" * 64)
    Suppression.objects.create(kind="email", namespace="", blind_index="b" * 64)
    found = Suppression.objects.filter(any_of(Suppression, "blind_index", ["a" * 64, "a" * 70, "c"]))
    assert list(found.values_list("blind_index", flat=True)) == ["a" * 64]  # "a" * 70 is not cut to 64


def test_any_of_takes_ids_as_uuids_or_strings(source_factory):
    shop = source_factory("shop")
    a, b = profiles_ingest(source=shop, records=[{"external_id": "1", "identifiers": {"email": "a@example.com"}},
                                                 {"external_id": "2", "identifiers": {"email": "b@example.com"}}])
    as_strings = Profile.objects.filter(any_of(Profile, "id", [a.profile_id, b.profile_id]))
    as_uuids = Profile.objects.filter(any_of(Profile, "id", [uuid.UUID(a.profile_id)]))
    assert {str(p) for p in as_strings.values_list("id", flat=True)} == {a.profile_id, b.profile_id}
    assert [str(p) for p in as_uuids.values_list("id", flat=True)] == [a.profile_id]


def test_update_mapped_sets_each_row_from_the_mapping_and_the_other_values(source_factory):
    shop = source_factory("shop")
    results = profiles_ingest(source=shop, records=[
        {"external_id": str(n), "identifiers": {"email": f"p{n}@example.com"}} for n in range(4)])
    p0, p1, p2, p3 = (uuid.UUID(r.profile_id) for r in results)
    now = timezone.now()
    update_mapped(Profile, "id", "merged_into", {p1: p0, p3: p2}, status=ProfileStatus.MERGED, updated_at=now)
    rows = {p.id: p for p in Profile.objects.all()}
    assert (rows[p1].merged_into_id, rows[p1].status, rows[p1].updated_at) == (p0, ProfileStatus.MERGED, now)
    assert (rows[p3].merged_into_id, rows[p3].status) == (p2, ProfileStatus.MERGED)
    assert (rows[p0].merged_into_id, rows[p0].status) == (None, ProfileStatus.ACTIVE)  # not in the mapping
    update_mapped(Profile, "merged_into", "merged_into", {p0: p2})  # path compression
    assert Profile.objects.get(id=p1).merged_into_id == p2
    assert Profile.objects.get(id=p3).merged_into_id == p2


def test_merges_stored_together_move_events_and_compress_paths(source_factory):
    shop = source_factory("shop")
    results = profiles_ingest(source=shop, records=[
        {"external_id": str(n), "identifiers": {"email": f"p{n}@example.com"}} for n in range(5)])
    p0, p1, p2, p3, p4 = (uuid.UUID(r.profile_id) for r in results)
    Profile.objects.filter(id=p4).update(status=ProfileStatus.MERGED, merged_into=p1)  # merged into p1 before
    events_ingest(source=shop, events=[{"profile_id": str(p), "type": "view", "item_id": "sku-1"}
                                       for p in (p0, p1, p2, p3)])
    deks = {p.id: profile_dek(p) for p in Profile.objects.select_related("data_key")}
    merges_apply([MergeStep(survivor_id=s, absorbed_id=a, survivor_dek=deks[s], absorbed_dek=deks[a],
                            merge_id=uuid.uuid4(), created_at=timezone.now(), moved_records=[], moved_identities=[])
                  for s, a in ((p0, p1), (p2, p3))], cipher=crypto.ValueCipher())
    owners = sorted(Event.objects.values_list("profile_id", "origin_profile_id"))
    assert owners == sorted([(p0, p0), (p0, p1), (p2, p2), (p2, p3)])  # origins kept for an undo
    merged = dict(Profile.objects.filter(status=ProfileStatus.MERGED).values_list("id", "merged_into_id"))
    assert merged == {p1: p0, p3: p2, p4: p0}


def test_insert_rows_stores_json_columns_as_the_orm_reads_them_back():
    # On PostgreSQL the cursor's jsonb dumper encodes them (orjson, the stdlib beyond it);
    # elsewhere the field's own preparation. Either way the ORM reads back what was given.
    from cdp.core.bulk import insert_rows
    from cdp.core.ids import new_uuid4
    from cdp.core.models import OutboxMessage

    payloads = [
        {"profile_id": str(uuid.uuid4()), "nested": {"list": [1, 2.5, None, True], "text": "Zoë 😀 \u2028"}},
        {"big": 2**70, "negative": -(2**65), "empty": {}},
        ["a", "list", "payload"],
        "a string payload",
    ]
    now = timezone.now()
    event_ids = [new_uuid4() for _ in payloads]
    insert_rows(OutboxMessage, ("topic", "payload", "created_at", "event_id", "position"),
                [("profile.updated", payload, now, event_id, None) for payload, event_id in zip(payloads, event_ids)])
    stored = dict(OutboxMessage.objects.filter(event_id__in=event_ids).values_list("event_id", "payload"))
    assert [stored[event_id] for event_id in event_ids] == payloads


def test_insert_rows_logs_nothing_about_its_json_encoder(caplog):
    # psycopg warns for every dumps that is a closure ("may cause a resource leak").
    import logging

    from cdp.core.bulk import insert_rows
    from cdp.core.ids import new_uuid4
    from cdp.core.models import OutboxMessage

    with caplog.at_level(logging.DEBUG, logger="psycopg"):
        for _ in range(2):
            insert_rows(OutboxMessage, ("topic", "payload", "created_at", "event_id", "position"),
                        [("profile.updated", {"profile_id": str(uuid.uuid4())}, timezone.now(), new_uuid4(), None)])
    assert not [record for record in caplog.records if record.name.startswith("psycopg")]
