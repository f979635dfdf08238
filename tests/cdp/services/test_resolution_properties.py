"""Properties of resolution over random record streams, and concurrent batches."""

from __future__ import annotations

import contextlib
import random
import threading
from collections import defaultdict

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.core.errors import Conflict
from cdp.models import (
    DataKey,
    Event,
    Identity,
    Merge,
    MergeBlock,
    MergeConflict,
    Profile,
    ProfileStatus,
    RecordStatus,
    Source,
    SourceRecord,
    Suppression,
)
from cdp.services.merges import merge_undo
from cdp.services.resolution import profiles_ingest
from cdp.services.sources import source_create

EMAILS = [f"person{i}@example.com" for i in range(6)]
PHONES = ["+442079460018", "+14155550132", "+33142685300", "+4930901820"]
CRM_IDS = ["C1", "C2", "C3"]

identifier_sets = st.fixed_dictionaries({}, optional={
    "email": st.sampled_from(EMAILS + [e.upper() for e in EMAILS] + ["null"]),
    "phone": st.sampled_from(PHONES),
    "crm_id": st.sampled_from(CRM_IDS),
    "anonymous_id": st.sampled_from(["a1", "a2", "undefined"]),
})
operations = st.lists(
    st.one_of(
        st.tuples(st.just("ingest"), st.sampled_from(["crm", "shop", "broker"]), st.integers(0, 9), identifier_sets),
        st.tuples(st.just("unmerge"), st.integers(0, 5)),
    ),
    min_size=1, max_size=14,
)


def reset_database():
    for model in (Event, MergeConflict, MergeBlock, Merge, Identity, SourceRecord, Suppression, Profile, DataKey,
                  Source):
        model.objects.all().delete()
    crm, _ = source_create(key="crm", name="CRM", kind="first_party", trust=90)
    shop, _ = source_create(key="shop", name="Shop", kind="first_party", trust=50)
    broker, _ = source_create(key="broker", name="Broker", kind="third_party", trust=10)
    return {"crm": crm, "shop": shop, "broker": broker}


def assert_invariants():
    active = set(Profile.objects.filter(status=ProfileStatus.ACTIVE).values_list("id", flat=True))
    # Every identity belongs to a live profile; keys are unique (also a DB constraint).
    keys = list(Identity.objects.values_list("kind", "namespace", "blind_index", "profile_id"))
    assert len({k[:3] for k in keys}) == len(keys)
    assert {k[3] for k in keys} <= active
    # At most one source-scoped id per (profile, kind, source).
    scoped = defaultdict(set)
    for kind, namespace, index, profile_id in keys:
        if namespace:
            scoped[(profile_id, kind, namespace)].add(index)
    assert all(len(v) == 1 for v in scoped.values())
    # Every record belongs to exactly one live profile, or is a held third-party record.
    for status, profile_id, kind in SourceRecord.objects.values_list("status", "profile_id", "source__kind"):
        if status == RecordStatus.HELD:
            assert profile_id is None and kind == "third_party"
        else:
            assert profile_id in active
    # Merged profiles point at a live profile (path compression keeps the chain one long).
    for merged_into in Profile.objects.filter(status=ProfileStatus.MERGED).values_list("merged_into", flat=True):
        assert merged_into in active


@pytest.mark.django_db
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(ops=operations)
def test_random_streams_keep_identity_invariants(ops):
    sources = reset_database()
    for op in ops:
        if op[0] == "ingest":
            _, source_key, external, identifiers = op
            results = profiles_ingest(source=sources[source_key], records=[
                {"external_id": f"{source_key}-{external}", "identifiers": identifiers}])
            assert results[0].status in {"created", "updated", "merged", "unchanged", "conflict", "held",
                                         "rejected"}
        else:
            merges = list(Merge.objects.filter(undone_at__isnull=True).order_by("created_at"))
            if merges:
                # A later merge may have absorbed the survivor: refused, nothing changes.
                with contextlib.suppress(Conflict):
                    merge_undo(merge_id=merges[op[1] % len(merges)].id)
        assert_invariants()


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_overlapping_new_people_make_one_profile_each(postgres):
    source, _ = source_create(key="shop", name="Shop", kind="first_party", trust=50)
    people = [{"email": f"p{i}@example.com", "phone": f"+4420794600{i:02d}"} for i in range(60)]
    errors: list[BaseException] = []
    linked: set[int] = set()  # people some record named by both identifiers

    def worker(seed: int):
        rng = random.Random(seed)
        try:
            for batch_number in range(6):
                batch = []
                for person_index in rng.sample(range(len(people)), 25):
                    person = people[person_index]
                    # Some records carry one identifier, some both: merges happen concurrently.
                    identifiers = dict(rng.sample(sorted(person.items()), rng.choice([1, 2])))
                    if len(identifiers) == 2:
                        linked.add(person_index)
                    batch.append({"external_id": f"w{seed}-{batch_number}-{person_index}",
                                  "identifiers": identifiers})
                results = profiles_ingest(source=source, records=batch)
                assert all(r.status != "rejected" for r in results)
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert_invariants()
    # A linked person's identifiers all resolve to one live profile; no two people share one.
    assert len(linked) > 40
    owners: dict[int, set] = {}
    for person_index, person in enumerate(people):
        owners[person_index] = set(Identity.objects.filter(profile__status=ProfileStatus.ACTIVE).filter(
            blind_index__in=_indexes(person)).values_list("profile_id", flat=True))
        expected = 1 if person_index in linked else 2
        assert len(owners[person_index]) <= expected, f"person {person_index} split over profiles"
    all_owned = [pid for ids in owners.values() for pid in ids]
    assert len(all_owned) == len(set(all_owned))


def _indexes(person: dict) -> list[str]:
    from cdp import crypto

    return [crypto.blind_index(kind=kind, namespace="", normalized_value=value) for kind, value in person.items()]
