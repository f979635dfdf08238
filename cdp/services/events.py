"""Storing interaction events (views, carts, purchases, ratings) against profiles.

Events name a person by identifiers or by profile id. A first-party source naming an
unknown person creates a profile through ordinary resolution. Reads blind indexes and
ids; events hold no personal fields; logs nothing personal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.db import transaction

from cdp.models import Event, EventType, Identity, Profile, ProfileStatus, Source, Suppression
from cdp.services.records import RecordRejected, error, parse_identifiers, parse_observed_at, phone_region
from cdp.services.resolution import profiles_ingest

MAX_NAME = 200
MAX_ITEM_ID = 128


@dataclass
class EventResult:
    index: int
    status: str
    profile_id: str | None = None
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"index": self.index, "status": self.status, "profile_id": self.profile_id, "errors": self.errors}


@dataclass
class _ParsedEvent:
    index: int
    keys: list
    profile_id: UUID | None
    row: Event


def _parse_event(raw, *, index: int, source: Source) -> _ParsedEvent:
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
        keys, id_errors = parse_identifiers(raw["profile"], source_key=source.key, region=phone_region(raw["profile"]),
                                            field_prefix="profile")
        errors.extend(id_errors)
        if not id_errors and not keys:
            errors.append(error("profile", "no_usable_identifier", "The event names no usable identifier."))
    else:
        errors.append(error("profile", "required", "Name the person with profile or profile_id."))
    event_type = raw.get("type")
    if event_type not in EventType.values:
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
    if event_type in (EventType.PURCHASE, EventType.VIEW, EventType.ADD_TO_CART, EventType.RATING) and not item_id:
        errors.append(error("item_id", "required", f"A {event_type} event needs item_id."))
    if event_type == EventType.RATING and rating is None:
        errors.append(error("rating", "required", "A rating event needs rating."))
    try:
        occurred_at = parse_observed_at(raw.get("occurred_at"), "occurred_at")
    except RecordRejected as exc:
        errors.extend(exc.errors)
        occurred_at = None
    if errors:
        raise RecordRejected(errors)
    row = Event(source=source, type=event_type, name=name or "", item_id=item_id, quantity=quantity,
                price=price, rating=float(rating) if rating is not None else None, occurred_at=occurred_at,
                message_id=message_id)
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


def events_ingest(*, source: Source, events: list) -> list[EventResult]:
    results: dict[int, EventResult] = {}
    parsed: list[_ParsedEvent] = []
    for index, raw in enumerate(events):
        try:
            parsed.append(_parse_event(raw, index=index, source=source))
        except RecordRejected as exc:
            results[index] = EventResult(index, "rejected", errors=exc.errors)
    _create_unknown_people(parsed, source)
    with transaction.atomic():
        for result in _store(parsed, source):
            results[result.index] = result
    return [results[i] for i in range(len(events))]


def _create_unknown_people(parsed: list[_ParsedEvent], source: Source) -> None:
    """A first-party source naming someone new creates their profile (resolution decides)."""
    if source.is_third_party:
        return
    keys = {k.key for event in parsed for k in event.keys}
    known = _owners(keys)
    records, seen = [], set()
    for event in parsed:
        if event.keys and not any(k.key in known for k in event.keys):
            signature = tuple(sorted(k.key for k in event.keys))
            if signature in seen:
                continue
            seen.add(signature)
            records.append({"external_id": "event-person:" + event.keys[0].blind_index,
                            "identifiers": {k.kind: k.value for k in event.keys}})
    if records:
        profiles_ingest(source=source, records=records)


def _owners(keys) -> dict:
    if not keys:
        return {}
    rows = Identity.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
        "kind", "namespace", "blind_index", "profile_id")
    return {(k, n, b): p for k, n, b, p in rows if (k, n, b) in keys}


def _store(parsed: list[_ParsedEvent], source: Source) -> list[EventResult]:
    keys = {k.key for event in parsed for k in event.keys}
    owners = _owners(keys)
    suppressed = set(Suppression.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
        "kind", "namespace", "blind_index")) & keys if keys else set()
    named_ids = {e.profile_id for e in parsed if e.profile_id}
    profiles = {p.id: p for p in Profile.objects.filter(id__in=named_ids)} if named_ids else {}
    message_ids = [e.row.message_id for e in parsed if e.row.message_id]
    seen_messages = set(Event.objects.filter(source=source, message_id__in=message_ids).values_list(
        "message_id", flat=True)) if message_ids else set()
    results, rows = [], []
    for event in parsed:
        if any(k.key in suppressed for k in event.keys):
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
        if event.row.message_id and event.row.message_id in seen_messages:
            results.append(EventResult(event.index, "duplicate", str(profile_id)))
            continue
        if event.row.message_id:
            seen_messages.add(event.row.message_id)
        event.row.profile_id = event.row.origin_profile_id = profile_id
        rows.append(event.row)
        results.append(EventResult(event.index, "accepted", str(profile_id)))
    Event.objects.bulk_create(rows, batch_size=1000)
    return results


def _profile_for(event: _ParsedEvent, owners: dict, profiles: dict):
    if event.profile_id is not None:
        profile = profiles.get(event.profile_id)
        if profile is None:
            return None
        if profile.status == ProfileStatus.ERASED:
            return "erased"
        return profile.merged_into_id if profile.status == ProfileStatus.MERGED else profile.id
    for key in event.keys:
        if key.key in owners:
            return owners[key.key]
    return None
