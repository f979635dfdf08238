"""Identity resolution: records from many sources become one profile per person.

`profiles_ingest` takes a batch of raw records from one source and answers one result
per record, in input order. Per batch it makes a fixed number of queries (lock, read
identities / records / held records, bulk writes). Merges are decided in memory as the
batch is resolved and written together when it is stored, a few statements for all of
them (plus consent's own work per merge); only a merge that would push a profile past an
identifier cap takes the slow path (store everything so far, then `profile_merge`).

A batch runs in three parts, each with its own state: loading (loading.py: lock and read
what the records name), deciding (deciding.py: where each record goes, merges, which
identifiers and values a profile takes) and writing (writing.py: the decided rows, stored
together). The row work (encrypting values, filling and rebuilding attributes, moving
rows on a merge, storing merges) is the domain's, shared with every other caller.

The hot path builds no Django model instances: rows are small slotted objects (rows.py),
written as tuples with COPY (cdp.core.bulk.insert_rows), and every data key is unwrapped
once and its AES-GCM context built once per batch.

Reads identifiers as blind indexes, writes ciphertexts under each profile's data key;
logs nothing personal.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import IntegrityError, OperationalError, transaction

from cdp.core.outbox import outbox_put_many
from cdp.models import Source
from cdp.services.profiles import profiles_touch
from cdp.services.records import ItemResult, ParsedRecord, RecordRejected, parse_record
from cdp.services.resolution.deciding import Decider
from cdp.services.resolution.loading import Loader, World
from cdp.services.resolution.writing import Writer

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 4


@dataclass
class RecordResult(ItemResult):
    # The profiles this record merged into `profile_id` (not part of the API's answer):
    # callers holding identifier owners read before know which of them went stale.
    merged_ids: list[str] = field(default_factory=list)


def profiles_ingest(*, source: Source, records: list, identifier_cache: dict | None = None) -> list[RecordResult]:
    """Validate, resolve and store a batch of records from one source.

    A bad record is rejected alone; concurrent batches over the same people are
    serialized by per-identifier locks taken in a stable order, and retried on a
    deadlock or a lost race. `identifier_cache`: a dict the caller keeps for this one
    batch of this source (see records.parse_identifiers), shared with its other calls.
    """
    results: dict[int, RecordResult] = {}
    parsed: list[ParsedRecord] = []
    cache = {} if identifier_cache is None else identifier_cache  # this batch only
    for index, raw in enumerate(records):
        try:
            parsed.append(parse_record(raw, index=index, source_key=source.key, cache=cache, zone=source.zone))
        except RecordRejected as exc:
            results[index] = RecordResult(index, "rejected", errors=exc.errors)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                resolved = _Resolver(source).run(parsed)
            break
        except (OperationalError, IntegrityError):
            # Deadlock or a unique-key race with a concurrent batch: the transaction
            # rolled back whole, so running it again is safe.
            if attempt == MAX_ATTEMPTS:
                raise
            logger.warning("resolution_retry", extra={"attempt": attempt, "source": source.key})
    results.update({r.index: r for r in resolved})
    return [results[i] for i in range(len(records))]


class _Resolver:
    """One batch inside one transaction: load, decide record by record, store."""

    # False: every merge takes the slow path (store, then profile_merge), as before
    # merges were decided in memory; tests compare the two.
    defer_merges = True

    def __init__(self, source: Source):
        self.source = source

    def run(self, records: list[ParsedRecord]) -> list[RecordResult]:
        writer = Writer()
        world = World()
        loader = Loader(self.source, world, writer.cipher)
        suppressed = loader.load(records)
        decider = Decider(self.source, world, loader, writer, defer_merges=self.defer_merges)
        results = []
        for record in records:
            if any(k.key in suppressed for k in record.identifiers):
                results.append(RecordResult(record.index, "suppressed"))
                continue
            status, profile_id, merged = decider.resolve(record)
            results.append(RecordResult(record.index, status, str(profile_id) if profile_id else None,
                                        merged_ids=[str(p) for p in merged]))
        decider.flush(final=True)
        changed = decider.touched - decider.created
        profiles_touch(changed)
        outbox_put_many([("profile.created", {"profile_id": str(p)}) for p in decider.created]
                        + [("profile.updated", {"profile_id": str(p)}) for p in changed])
        return results
