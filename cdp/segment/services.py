"""Storing Segment messages: one resolution pass, one events pass, and an error log.

`segment_messages_ingest` maps a batch, sends every identify/alias record (and the
link records that stitch an event's identifiers) through one `profiles_ingest` call,
then every event through one `events_ingest` call, so the hot path stays batched. A
message that cannot be stored, whole or in part, goes to the ingestion-error log,
encrypted under a data key of its own; messages about erased people are not stored
anywhere, not even there.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction

from cdp import crypto
from cdp.core.bulk import any_of
from cdp.models import DataKey, Identity, Source, Suppression
from cdp.segment import mapping
from cdp.segment.models import IngestionError, IngestionErrorIdentifier
from cdp.services.events import events_ingest
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
    # People first, so the events below find the profiles identify/alias just made or merged.
    _records_store(source, mapped, failures, suppressed, cache)
    outcome.duplicates = _events_store(source, mapped, failures, suppressed, cache)
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


def _records_store(source: Source, mapped: list, failures: dict, suppressed: set, cache: dict) -> None:
    records, origins = [], []
    for item in mapped:
        records += item.records
        origins += [item.index] * len(item.records)
    for item, link in _links_needed(source, mapped, records, cache):
        records.append(link)
        origins.append(item.index)
    if records:
        for origin, result in zip(origins, profiles_ingest(source=source, records=records, identifier_cache=cache)):
            _note(result, origin, failures, suppressed)


def _events_store(source: Source, mapped: list, failures: dict, suppressed: set, cache: dict) -> int:
    events, origins = [], []
    for item in mapped:
        events += item.events
        origins += [item.index] * len(item.events)
    if not events:
        return 0
    try:
        results = events_ingest(source=source, events=events, identifier_cache=cache)
    except IntegrityError:
        # A concurrent request stored one of these message ids between the duplicate
        # check and the insert. The transaction rolled back whole; a second pass sees
        # the stored id and answers `duplicate`.
        results = events_ingest(source=source, events=events, identifier_cache=cache)
    for origin, result in zip(origins, results):
        _note(result, origin, failures, suppressed)
    return sum(result.status == "duplicate" for result in results)


def _keys(source: Source, identifiers: dict, cache: dict | None = None) -> list:
    keys, _errors = parse_identifiers(identifiers, source_key=source.key, region=phone_region({}), cache=cache)
    return keys


def _owners(keys) -> dict:
    if not keys:
        return {}
    wanted = {k.key for k in keys}
    rows = Identity.objects.filter(any_of(Identity, "blind_index", {k.blind_index for k in keys})).values_list(
        "kind", "namespace", "blind_index", "profile_id")
    return {(kind, ns, index): pid for kind, ns, index, pid in rows if (kind, ns, index) in wanted}


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
    owners = _owners([k for keys in (*as_user.values(), *as_anonymous.values()) for k in keys])
    for item in aliases:
        known_user = any(k.key in owners for k in as_user[item.index])
        known_anonymous = any(k.key in owners for k in as_anonymous[item.index])
        if known_user and not known_anonymous:
            failures[item.index].add("alias_between_user_ids")
            item.records = []
            mapped.remove(item)


def _links_needed(source: Source, mapped: list, records: list, cache: dict) -> list:
    """Link records for events naming several identifiers not yet held by one profile.

    Skipped when an identify/alias record of this batch already names them all, or when
    they already belong to the same profile (the common case after sign-in), so a
    steady stream of tracks costs one read here and no resolution work.
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
    owners = _owners([k for _, keys in candidates for k in keys])
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
