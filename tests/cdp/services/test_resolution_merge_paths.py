"""Merges decided in memory and stored with the batch end as the slow path would:
flushing first, then profile_merge (which is how every merge was done before)."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from cdp.core.models import OutboxMessage
from cdp.models import AttributeValue, Identity, Merge, MergeConflict, Profile, Source, SourceRecord
from cdp.services import resolution
from cdp.services.attributes import attribute_value_read
from cdp.services.profiles import profile_dek
from cdp.services.sources import source_create
from consent.models import ChainHead

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 1, tzinfo=UTC)


def stream(count: int, seed: int):
    """Records where a fifth name people seen before: variants, links of two people, versions."""
    rng = random.Random(seed)
    people: list[tuple[str, str]] = []
    for n in range(count):
        if people and rng.random() < 0.35:
            email, phone = rng.choice(people)
            style = rng.random()
            if style < 0.3:
                identifiers = {"email": email.upper()}
            elif style < 0.5:
                identifiers = {"phone": phone}
            else:
                other, _ = rng.choice(people)
                identifiers = {"email": other, "phone": phone, "anonymous_id": f"dev-{rng.randrange(count)}"}
            source = rng.choice(["crm", "web"])
            external_id = f"r{rng.randrange(n)}" if rng.random() < 0.2 else f"r{n}"  # some new versions
        else:
            email, phone = f"p{n}@example.com", f"+44207946{n % 10_000:04d}"
            people.append((email, phone))
            identifiers = {"email": email, "phone": phone} if rng.random() < 0.6 else {"email": email}
            if rng.random() < 0.3:
                identifiers["crm_id"] = f"C{rng.randrange(count // 2)}"  # some clash: conflicts
            source, external_id = rng.choice(["crm", "shop"]), f"r{n}"
        yield source, {"external_id": external_id, "identifiers": identifiers,
                       "attributes": {"city": rng.choice(["York", "Leeds", "Hull"]), "tier": rng.randrange(3),
                                      "country": "GB"},
                       # Distinct, in no order: an older observation must not overwrite a newer one. (Equal
                       # times would tie-break on random record ids, in either path.)
                       "observed_at": (START + timedelta(seconds=n * 7919 % 100_003)).isoformat()}


def run(seed: int, *, defer: bool, monkeypatch) -> dict:
    monkeypatch.setattr(resolution._Resolver, "defer_merges", defer)
    for model in (MergeConflict, Merge, Identity, AttributeValue, SourceRecord, Profile, Source, OutboxMessage,
                  ChainHead):
        model.objects.all().delete()
    sources = {}
    for key, trust in (("crm", 90), ("shop", 50), ("web", 20)):
        sources[key] = source_create(key=key, name=key, kind="first_party", trust=trust)[0]
    statuses, batches = [], {key: [] for key in sources}
    for key, record in stream(400, seed):
        batches[key].append(record)
        if len(batches[key]) == 40:
            statuses += [r.status for r in resolution.profiles_ingest(source=sources[key], records=batches[key])]
            batches[key] = []
    for key, records in batches.items():
        statuses += [r.status for r in resolution.profiles_ingest(source=sources[key], records=records)]
    record_name = {r.id: (r.source.key, r.external_key, r.is_current)
                   for r in SourceRecord.objects.select_related("source")}
    profiles = set()
    for profile in Profile.objects.filter(status="active").select_related("data_key"):
        dek = profile_dek(profile)
        profiles.add((
            frozenset(record_name[r] for r in SourceRecord.objects.filter(profile=profile).values_list("id",
                                                                                                         flat=True)),
            frozenset(Identity.objects.filter(profile=profile).values_list("kind", "blind_index")),
            frozenset((a.name, a.source.key, repr(attribute_value_read(a, dek=dek)), record_name[a.record_id])
                      for a in AttributeValue.objects.filter(profile=profile).select_related("source")),
            profile.version,
        ))
    merges = Counter((frozenset(record_name[uuid.UUID(r)] for r in m.moved_records),
                      len(m.moved_identities), len(m.absorbed_profiles)) for m in Merge.objects.all())
    return {"statuses": statuses, "profiles": profiles, "merges": merges,
            "merged": Profile.objects.filter(status="merged").count(),
            "conflicts": sorted(MergeConflict.objects.values_list("reason", flat=True)),
            "outbox": Counter(OutboxMessage.objects.values_list("topic", flat=True)),
            "heads": ChainHead.objects.count()}


@pytest.mark.parametrize("seed", [1, 2])
def test_merges_in_memory_store_what_the_slow_path_stores(seed, monkeypatch):
    fast = run(seed, defer=True, monkeypatch=monkeypatch)
    slow = run(seed, defer=False, monkeypatch=monkeypatch)
    assert sum(fast["merges"].values()) > 5 and fast["conflicts"]  # the stream exercises both
    assert fast == slow


def test_insert_rows_reports_a_duplicate_key_as_integrity_error():
    """Resolution and the events path retry on IntegrityError: COPY must raise that too."""
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    from cdp.core.bulk import insert_rows
    from cdp.models import DataKey

    row = (uuid.uuid4(), "kek", b"wrapped", timezone.now(), None)
    columns = ("id", "kek_id", "wrapped", "created_at", "rotated_at")
    insert_rows(DataKey, columns, [row])
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_rows(DataKey, columns, [row])
