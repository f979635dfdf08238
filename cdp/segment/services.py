"""Storing Segment messages: one resolution pass, one events pass, and an error log.

`segment_messages_ingest` maps a batch, sends every identify/alias record, the link
records that stitch an event's identifiers and a record for each new person an event
names through one `profiles_ingest` call, then stores every event in one transaction,
so the hot path stays batched. A
message that cannot be stored, whole or in part, goes to the ingestion-error log,
encrypted under a data key of its own; messages about erased people are not stored
anywhere, not even there.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import IntegrityError, transaction

from cdp import crypto
from cdp.models import DataKey, Source, Suppression
from cdp.segment import mapping
from cdp.segment.models import IngestionError, IngestionErrorIdentifier
from cdp.services.events import (
    event_keys,
    events_parse,
    events_store,
    identity_owners,
    unknown_people_create,
    unknown_people_records,
)
from cdp.services.records import parse_identifiers, phone_region
from cdp.services.resolution import profiles_ingest

logger = logging.getLogger(__name__)

MESSAGE_FIELD = "ingestion_error.message"


@dataclass
class IngestOutcome:
    messages: int
    failed: int = 0
    suppressed: int = 0
    duplicates: int = 0
    dropped_traits: int = 0


def segment_messages_ingest(*, source: Source, messages: list, context: dict | None = None,
                            sent_at=None) -> IngestOutcome:
    """Store a list of Segment messages from one source; never raises for a bad message.

    Reads blind indexes (suppression, identities); writes profiles, records, events and
    encrypted ingestion-error rows; logs counts only, never values.
    """
    outcome = IngestOutcome(messages=len(messages))
    failures: dict[int, set[str]] = defaultdict(set)
    suppressed: set[int] = set()
    mapped: list[mapping.Mapped] = []
    for index, message in enumerate(messages):
        try:
            item = mapping.message_map(message, index=index, context=context, sent_at=sent_at)
        except mapping.MessageInvalid as exc:
            failures[index].update(exc.codes)
            continue
        failures[index].update(item.codes)
        outcome.dropped_traits += item.dropped_traits
        mapped.append(item)
    cache: dict = {}  # identifiers of this batch, normalized and blind-indexed once
    _aliases_check(source, mapped, failures, cache)
    outcome.duplicates = _store(source, mapped, failures, suppressed, cache)
    cache.clear()

    failed = {index: sorted(codes) for index, codes in failures.items() if codes and index not in suppressed}
    logged, erased = ingestion_errors_log(source=source, failures=[(messages[i], codes, context)
                                                                   for i, codes in sorted(failed.items())])
    outcome.failed, outcome.suppressed = logged, len(suppressed) + erased
    # Counts only: an operator reads the failures themselves in the error log.
    logger.log(logging.WARNING if outcome.failed else logging.INFO, "segment_messages_ingested", extra={
        "source": source.key, "messages": outcome.messages, "failed": outcome.failed,
        "suppressed": outcome.suppressed, "duplicates": outcome.duplicates,
        "dropped_traits": outcome.dropped_traits})
    return outcome


def _note(result, origin: int, failures: dict, suppressed: set) -> None:
    if result.status == "rejected":
        failures[origin].update(error["code"] for error in result.errors)
    elif result.status == "suppressed":
        suppressed.add(origin)


def _store(source: Source, mapped: list, failures: dict, suppressed: set, cache: dict) -> int:
    """People first, in one resolution pass: identify/alias records, the link records
    that stitch an event's identifiers, and a record for each new person an event names;
    then the events, against the profiles as resolution left them. Returns how many
    events were duplicates."""
    records, origins, events, event_origins = [], [], [], []
    for item in mapped:
        records += item.records
        origins += [item.index] * len(item.records)
        events += item.events
        event_origins += [item.index] * len(item.events)
    parsed, rejected = events_parse(source=source, events=events, cache=cache)
    keys = event_keys(parsed)
    owners = identity_owners(keys)
    for item, link in _links_needed(source, mapped, records, owners, cache):
        records.append(link)
        origins.append(item.index)
    people = unknown_people_records(parsed, owners, source=source, named=_named_keys(source, records, cache))
    if records or people:
        results = profiles_ingest(source=source, records=records + people, identifier_cache=cache)
        for origin, result in zip(origins, results):
            _note(result, origin, failures, suppressed)
        # Read again what may have changed: identifiers nobody held, and those of the
        # people these records merged away.
        merged_away = {UUID(pid) for result in results for pid in result.merged_ids}
        owners = {key: pid for key, pid in owners.items() if pid not in merged_away}
        owners.update(identity_owners(keys - owners.keys()))
        # Named only by a record that made nobody (rejected, say): such a person still
        # comes from the event, as without that record.
        unknown_people_create(parsed, owners, source=source, cache=cache)
    if not events:
        return 0
    try:
        results = events_store(parsed=parsed, rejected=rejected, source=source, owners=owners)
    except IntegrityError:
        # A concurrent request stored one of these message ids between the duplicate
        # check and the insert. The transaction rolled back whole; a second pass sees
        # the stored id and answers `duplicate`.
        results = events_store(parsed=parsed, rejected=rejected, source=source, owners=owners)
    for origin, result in zip(event_origins, results):
        _note(result, origin, failures, suppressed)
    return sum(result.status == "duplicate" for result in results)


def _named_keys(source: Source, records: list, cache: dict) -> set:
    """The identifier keys that these profile records name (a rejected value names none)."""
    named = set()
    for record in records:
        identifiers = record.get("identifiers")
        if isinstance(identifiers, dict):
            region = phone_region(record.get("attributes") or {})
            keys, _errors = parse_identifiers(identifiers, source_key=source.key, region=region, cache=cache)
            named |= {k.key for k in keys}
    return named


def _keys(source: Source, identifiers: dict, cache: dict | None = None) -> list:
    keys, _errors = parse_identifiers(identifiers, source_key=source.key, region=phone_region({}), cache=cache)
    return keys


def _aliases_check(source: Source, mapped: list, failures: dict, cache: dict) -> None:
    """An alias whose previousId is a known user id of this source is logged, not stored.

    Tessera keeps one user id per source per profile, so linking two user ids is a merge
    that protection refuses; storing previousId as an anonymous id instead would link
    nothing and hide that. The operator sees it in the error log.
    """
    aliases = [item for item in mapped if item.alias_previous_id is not None]
    if not aliases:
        return
    as_user = {item.index: _keys(source, {"user_id": item.alias_previous_id}, cache) for item in aliases}
    as_anonymous = {item.index: _keys(source, {"anonymous_id": item.alias_previous_id}, cache) for item in aliases}
    owners = identity_owners({k.key for keys in (*as_user.values(), *as_anonymous.values()) for k in keys})
    for item in aliases:
        known_user = any(k.key in owners for k in as_user[item.index])
        known_anonymous = any(k.key in owners for k in as_anonymous[item.index])
        if known_user and not known_anonymous:
            failures[item.index].add("alias_between_user_ids")
            item.records = []
            mapped.remove(item)


def _links_needed(source: Source, mapped: list, records: list, owners: dict, cache: dict) -> list:
    """Link records for events naming several identifiers not yet held by one profile.

    Skipped when an identify/alias record of this batch already names them all, or when
    they already belong to the same profile (the common case after sign-in), so a
    steady stream of tracks costs no resolution work. `owners`: identity_owners of the
    events' identifiers (a link names its event's), read for the others here.
    """
    named = [set(_stringified(r["identifiers"])) for r in records]
    candidates = []
    for item in mapped:
        if item.link is None:
            continue
        wanted = set(_stringified(item.link["identifiers"]))
        if any(wanted <= other for other in named):
            continue
        candidates.append((item, _keys(source, item.link["identifiers"], cache)))
    wanted = {k.key for _, keys in candidates for k in keys}
    owners = {**owners, **identity_owners(wanted - owners.keys())}
    needed, seen = [], set()
    for item, keys in candidates:
        profiles = {owners.get(k.key) for k in keys}
        signature = item.link["external_id"]
        if (len(profiles) == 1 and None not in profiles) or signature in seen:
            continue
        seen.add(signature)
        needed.append((item, item.link))
    return needed


def _stringified(identifiers: dict):
    return [(kind, str(value)) for kind, value in identifiers.items()]


# --- the ingestion-error log ------------------------------------------------------------------
def ingestion_errors_log(*, source: Source, failures: list[tuple[object, list[str], dict | None]]) -> tuple[int, int]:
    """Keep failed messages, each encrypted under its own data key; (logged, erased).

    A message naming an erased person (a suppressed identifier) is not kept. Writes
    DataKey, IngestionError and IngestionErrorIdentifier rows; reads suppressions.
    """
    if not failures:
        return 0, 0
    indexed = []
    for message, codes, context in failures:
        keys = []
        for kind, value in mapping.message_identifiers(message, context):
            keys += _keys(source, {kind: value})
        indexed.append((message, codes, {k.key for k in keys}))
    all_keys = {key for _, _, keys in indexed for key in keys}
    suppressed = set(Suppression.objects.filter(blind_index__in=[k[2] for k in all_keys]).values_list(
        "kind", "namespace", "blind_index")) & all_keys if all_keys else set()
    data_keys, rows, identifiers = [], [], []
    erased = 0
    for message, codes, keys in indexed:
        if keys & suppressed:
            erased += 1
            continue
        data_key, dek = crypto.data_key_new()
        row = IngestionError(source=source, message_type=mapping.message_type_label(message), codes=codes,
                             data_key=data_key)
        row.message = crypto.encrypt_value(dek, owner_id=row.id, field=MESSAGE_FIELD,
                                           value=mapping.message_for_log(message))
        data_keys.append(data_key)
        rows.append(row)
        identifiers += [IngestionErrorIdentifier(error=row, kind=kind, namespace=namespace, blind_index=index)
                        for kind, namespace, index in sorted(keys)]
    with transaction.atomic():
        DataKey.objects.bulk_create(data_keys)
        IngestionError.objects.bulk_create(rows)
        IngestionErrorIdentifier.objects.bulk_create(identifiers)
    return len(rows), erased


def ingestion_error_message_read(*, error: IngestionError):
    """The decrypted message for an operator's detail view; None once shredded."""
    if error.data_key_id is None:
        return None
    dek = crypto.data_key_open(DataKey.objects.get(pk=error.data_key_id))
    return crypto.decrypt_value(dek, owner_id=error.id, field=MESSAGE_FIELD, ciphertext=error.message)


@transaction.atomic
def ingestion_errors_purge(*, received_before: datetime) -> int:
    """Retention: delete error rows received before a time, with their data keys."""
    return _delete(IngestionError.objects.filter(received_at__lt=received_before))


@transaction.atomic
def ingestion_errors_shred(*, identity_keys) -> int:
    """Erasure: delete the error rows naming any of these (kind, namespace, blind index)."""
    identity_keys = set(identity_keys)
    if not identity_keys:
        return 0
    rows = IngestionErrorIdentifier.objects.filter(blind_index__in=[k[2] for k in identity_keys]).values_list(
        "error_id", "kind", "namespace", "blind_index")
    error_ids = {error_id for error_id, *key in rows if tuple(key) in identity_keys}
    return _delete(IngestionError.objects.filter(id__in=error_ids))


def _delete(queryset) -> int:
    key_ids = list(queryset.exclude(data_key=None).values_list("data_key_id", flat=True))
    deleted = queryset.delete()[1].get(IngestionError._meta.label, 0)
    # Deleting the key is the shredding: a backup still holding the row cannot read it.
    DataKey.objects.filter(id__in=key_ids).delete()
    return deleted
