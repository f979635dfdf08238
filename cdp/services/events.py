"""Storing interaction events (views, carts, purchases, ratings) against profiles.

Events name a person by identifiers or by profile id. A first-party source naming an
unknown person creates a profile through ordinary resolution. Reads blind indexes and
ids; events hold no personal fields; logs nothing personal.

Per batch: one identity lookup before resolving unknown people and one after (of the
identifiers nobody held), one read each for suppressions, named profiles and seen
message ids, then one COPY of the events (plain rows, no model instances); identifiers
repeated in a batch are normalized and blind-indexed once. The steps are public so that
Segment ingestion can resolve its own records and the events' new people in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.db import transaction
from django.utils import timezone

from cdp.core.advisory import advisory_locks
from cdp.core.bulk import insert_rows, rows_any_of
from cdp.core.event_hooks import events_touched
from cdp.core.ids import new_uuid4
from cdp.models import Event, EventType, Identity, Profile, ProfileStatus, Source, Suppression
from cdp.services.records import (
    ItemResult,
    RecordRejected,
    error,
    identifiers_and_region,
    parse_identifiers,
    parse_observed_at,
)
from cdp.services.resolution import profiles_ingest

MAX_NAME = 200
MAX_ITEM_ID = 128


class EventResult(ItemResult):
    """One event's outcome."""


class _EventRow:
    """An Event row to insert, named like the model's fields."""

    __slots__ = ("type", "name", "item_id", "quantity", "price", "rating", "occurred_at", "message_id",
                 "profile_id", "origin_profile_id")

    def __init__(self, type, name, item_id, quantity, price, rating, occurred_at, message_id):  # noqa: A002
        self.type, self.name, self.item_id, self.quantity, self.price = type, name, item_id, quantity, price
        self.rating, self.occurred_at, self.message_id = rating, occurred_at, message_id
        self.profile_id = self.origin_profile_id = None


_EVENT_COLUMNS = ("id", "profile_id", "origin_profile_id", "source_id", "type", "name", "item_id", "quantity",
                  "price", "rating", "occurred_at", "received_at", "message_id")
_EVENT_TYPES = frozenset(EventType.values)
_ITEM_TYPES = frozenset((EventType.PURCHASE, EventType.VIEW, EventType.ADD_TO_CART, EventType.RATING))


@dataclass
class _ParsedEvent:
    index: int
    keys: list
    profile_id: UUID | None
    row: _EventRow


def _parse_event(raw, *, index: int, source: Source, cache: dict | None = None) -> _ParsedEvent:
    if not isinstance(raw, dict):
        raise RecordRejected([error("event", "wrong_type", "An event must be an object.")])
    errors: list[dict] = []
    keys, profile_id = [], None
    if raw.get("profile_id") is not None:
        try:
            profile_id = UUID(str(raw["profile_id"]))
        except ValueError:
            errors.append(error("profile_id", "invalid_uuid", "profile_id must be a UUID."))
    elif isinstance(raw.get("profile"), dict):
        identifiers, region, id_errors = identifiers_and_region(raw["profile"], field_prefix="profile")
        keys, more_errors = parse_identifiers(identifiers, source_key=source.key, region=region,
                                              field_prefix="profile", cache=cache)
        id_errors += more_errors
        errors.extend(id_errors)
        if not id_errors and not keys:
            errors.append(error("profile", "no_usable_identifier", "The event names no usable identifier."))
    else:
        errors.append(error("profile", "required", "Name the person with profile or profile_id."))
    event_type = raw.get("type")
    if not isinstance(event_type, str) or event_type not in _EVENT_TYPES:
        errors.append(error("type", "invalid_choice", f"type must be one of {', '.join(EventType.values)}."))
    name = _optional_str(raw, "name", MAX_NAME, errors)
    item_id = _optional_str(raw, "item_id", MAX_ITEM_ID, errors)
    message_id = _optional_str(raw, "message_id", MAX_NAME, errors)
    quantity = raw.get("quantity")
    if quantity is not None and (not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0):
        errors.append(error("quantity", "invalid_number", "quantity must be a whole number ≥ 0."))
    price = _decimal(raw.get("price"), "price", errors)
    rating = raw.get("rating")
    if rating is not None and (not isinstance(rating, (int, float)) or isinstance(rating, bool)):
        errors.append(error("rating", "invalid_number", "rating must be a number."))
    if event_type in _ITEM_TYPES and not item_id:
        errors.append(error("item_id", "required", f"A {event_type} event needs item_id."))
    if event_type == EventType.RATING and rating is None:
        errors.append(error("rating", "required", "A rating event needs rating."))
    try:
        occurred_at = parse_observed_at(raw.get("occurred_at"), "occurred_at", zone=source.zone)
    except RecordRejected as exc:
        errors.extend(exc.errors)
        occurred_at = None
    if errors:
        raise RecordRejected(errors)
    row = _EventRow(event_type, name or "", item_id, quantity, price, float(rating) if rating is not None else None,
                    occurred_at, message_id)
    return _ParsedEvent(index, keys, profile_id, row)


def _optional_str(raw: dict, name: str, limit: int, errors: list) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors.append(error(name, "wrong_type", f"{name} must be a string."))
        return None
    if len(value) > limit:
        errors.append(error(name, "too_long", f"{name} may hold at most {limit} characters."))
        return None
    return value.strip() or None


def _decimal(value, name: str, errors: list) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        errors.append(error(name, "invalid_number", f"{name} must be a number."))
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        errors.append(error(name, "invalid_number", f"{name} must be a number."))
        return None
    if not number.is_finite() or abs(number) >= Decimal("1e10"):
        errors.append(error(name, "invalid_number", f"{name} is out of range."))
        return None
    return number.quantize(Decimal("0.01"))


def events_ingest(*, source: Source, events: list, identifier_cache: dict | None = None,
                  profiles_visible: Callable[[set], set] | None = None) -> list[EventResult]:
    """`identifier_cache`: a dict the caller keeps for this one batch of this source
    (see records.parse_identifiers), shared with its other calls. `profiles_visible`: the
    caller's key boundary (cdp.core.http.permissions); an event naming a `profile_id` it leaves
    out is answered as for an unknown id."""
    cache = {} if identifier_cache is None else identifier_cache
    parsed, rejected = events_parse(source=source, events=events, cache=cache)
    owners = identity_owners(event_keys(parsed))
    unknown_people_create(parsed, owners, source=source, cache=cache)
    return events_store(parsed=parsed, rejected=rejected, source=source, owners=owners,
                        profiles_visible=profiles_visible)


def events_parse(*, source: Source, events: list, cache: dict) -> tuple[list[_ParsedEvent], list[EventResult]]:
    """Validated events and the results of the rejected ones."""
    parsed, rejected = [], []
    for index, raw in enumerate(events):
        try:
            parsed.append(_parse_event(raw, index=index, source=source, cache=cache))
        except RecordRejected as exc:
            rejected.append(EventResult(index, "rejected", errors=exc.errors))
    return parsed, rejected


def event_keys(parsed: list[_ParsedEvent]) -> set:
    return {k.key for event in parsed for k in event.keys}


def unknown_people_records(parsed: list[_ParsedEvent], owners: dict, *, source: Source,
                           named: set = frozenset()) -> list[dict]:
    """A profile record for each person the events name whom nobody holds yet, so that
    resolution creates them (a first-party source only). `named`: identifier keys that
    records resolved in the same pass name; their events need no record of their own."""
    if source.is_third_party:
        return []
    records, seen = [], set()
    for event in parsed:
        if not event.keys:
            continue
        for key in event.keys:
            if key.key in owners or key.key in named:
                break
        else:
            signature = tuple(sorted(k.key for k in event.keys))
            if signature in seen:
                continue
            seen.add(signature)
            records.append({"external_id": "event-person:" + event.keys[0].blind_index,
                            "identifiers": {k.kind: k.value for k in event.keys}})
    return records


def unknown_people_create(parsed: list[_ParsedEvent], owners: dict, *, source: Source, cache: dict) -> None:
    """Resolve unknown_people_records, then add the new people's identifiers to `owners`
    (a new profile never takes over an identifier someone holds: only the identifiers
    nobody held need reading again)."""
    people = unknown_people_records(parsed, owners, source=source)
    if people:
        profiles_ingest(source=source, records=people, identifier_cache=cache)
        owners.update(identity_owners(event_keys(parsed) - owners.keys()))


def identity_owners(keys) -> dict:
    """(kind, namespace, blind index) -> profile id, for the keys someone holds."""
    rows = rows_any_of(Identity, ("kind", "namespace", "blind_index", "profile_id"), "blind_index",
                       {k[2] for k in keys})
    return {(k, n, b): p for k, n, b, p in rows if (k, n, b) in keys}


@transaction.atomic
def events_store(*, parsed: list[_ParsedEvent], rejected: list[EventResult], source: Source,
                 owners: dict, profiles_visible: Callable[[set], set] | None = None) -> list[EventResult]:
    """Store the parsed events against their people (`owners`: identity_owners of their
    keys, read after any resolution); one result per event, in input order."""
    keys = event_keys(parsed)
    suppressed = set(rows_any_of(Suppression, ("kind", "namespace", "blind_index"), "blind_index",
                                 {k[2] for k in keys})) & keys
    named_ids = {e.profile_id for e in parsed if e.profile_id}
    if named_ids and profiles_visible is not None:
        named_ids = profiles_visible(named_ids)  # the others answer as unknown ids
    profiles = {pid: (status, merged_into) for pid, status, merged_into in rows_any_of(
        Profile, ("id", "status", "merged_into_id"), "id", named_ids)}
    if any(e.row.message_id for e in parsed):
        # No unique index spans the monthly partitions of events (PostgreSQL): writers of
        # one source's message ids take turns from this check to their commit instead.
        advisory_locks([hashlib.sha256(f"event-messages:{source.id}".encode()).hexdigest()])
    seen_messages = {message_id for (message_id,) in rows_any_of(
        Event, ("message_id",), "message_id", {e.row.message_id for e in parsed if e.row.message_id},
        source_id=source.id)}
    results, rows, profile_text = list(rejected), [], {}
    for event in parsed:
        if suppressed and any(k.key in suppressed for k in event.keys):
            results.append(EventResult(event.index, "suppressed"))
            continue
        profile_id = _profile_for(event, owners, profiles)
        if profile_id == "erased":
            results.append(EventResult(event.index, "suppressed"))
            continue
        if profile_id is None:
            field_name = "profile_id" if event.profile_id else "profile"
            results.append(EventResult(event.index, "rejected", errors=[
                error(field_name, "unknown_profile", "No known person matches; third-party sources cannot add one.")]))
            continue
        text = profile_text.get(profile_id) or profile_text.setdefault(profile_id, str(profile_id))
        if event.row.message_id and event.row.message_id in seen_messages:
            results.append(EventResult(event.index, "duplicate", text))
            continue
        if event.row.message_id:
            seen_messages.add(event.row.message_id)
        event.row.profile_id = event.row.origin_profile_id = profile_id
        rows.append(event.row)
        results.append(EventResult(event.index, "accepted", text))
    now = timezone.now()
    insert_rows(Event, _EVENT_COLUMNS, [
        (new_uuid4(), r.profile_id, r.origin_profile_id, source.id, r.type, r.name, r.item_id, r.quantity, r.price,
         r.rating, r.occurred_at, now, r.message_id) for r in rows])
    events_touched({r.profile_id for r in rows})
    return sorted(results, key=lambda result: result.index)


def _profile_for(event: _ParsedEvent, owners: dict, profiles: dict):
    if event.profile_id is not None:
        profile = profiles.get(event.profile_id)
        if profile is None:
            return None
        status, merged_into = profile
        if status == ProfileStatus.ERASED:
            return "erased"
        return merged_into if status == ProfileStatus.MERGED else event.profile_id
    for key in event.keys:
        if key.key in owners:
            return owners[key.key]
    return None
