"""The profile domain's side of consent work: handlers registered with `consent.registry`.

Consent owns the workflows (data-subject requests, withdrawal, retention); the data they
touch lives here, so these functions do the data work: resolving identifiers to
profiles, contributing the profile domain's part of an access export, erasing,
rectifying, purging by retention, and reacting to an `enrichment` withdrawal. Each runs
inside consent's transaction. The export decrypts (it goes only to the person); nothing
here logs personal data.
"""

from __future__ import annotations

from uuid import UUID

from django.db.models import Q
from django.utils import timezone

from cdp.core.http.models import IdempotencyRecord
from cdp.core.outbox import outbox_put
from cdp.models import (
    AttributeValue,
    DataKey,
    Event,
    Identity,
    Merge,
    MergeConflict,
    Profile,
    ProfileStatus,
    RecordStatus,
    SourceRecord,
)
from cdp.segment.models import IngestionError, IngestionErrorIdentifier
from cdp.segment.services import ingestion_error_message_read, ingestion_errors_shred
from cdp.selectors import item_titles, profile_ids_by_identifier, profile_ids_by_identifiers, profile_unified_view
from cdp.services import identity_rules
from cdp.services.attributes import attribute_value_read
from cdp.services.corrections import profile_rectify
from cdp.services.erasure import profile_erase
from cdp.services.event_partitions import (
    event_partitions_drop,
    event_partitions_droppable,
    received_before_outside,
)
from cdp.services.profiles import identity_value_read, profile_dek, profiles_touch
from cdp.services.records import identifiers_and_region, parse_identifiers
from cdp.services.source_records import record_payload_read
from consent import registry


def _iso(value):
    return value.isoformat() if value is not None else None


# --- resolving ------------------------------------------------------------------------------------


def resolve(*, identifiers: dict, source: str | None = None) -> list[UUID]:
    """Active profiles holding any of these identifiers (normally one); ValueError(code) for a
    malformed one. A `country` member says how a phone without "+" is read (else
    TESSERA_DEFAULT_PHONE_REGION)."""
    if not isinstance(identifiers, dict):
        raise ValueError("wrong_type")
    identifiers, region, errors = identifiers_and_region(identifiers, field_prefix="identifiers")
    if errors:
        raise ValueError(errors[0]["code"])
    found = profile_ids_by_identifiers(identifiers.items(), source_key=source, region=region, strict=True)
    return sorted(set(found.values()), key=str)


def sign_in_address(*, email: str) -> tuple[UUID, str] | None:
    """The active profile this address may open, and the address's blind index."""
    keys, errors = parse_identifiers({"email": email}, source_key="", region=None)
    if errors or not keys:
        return None
    index = keys[0].blind_index
    [profile_id] = profile_ids_by_identifier(kind="email", value=email) or [None]
    if profile_id is None or index not in sign_in_addresses_of(profile_id=profile_id):
        return None
    return profile_id, index


def sign_in_addresses_of(*, profile_id) -> list[str]:
    """Blind indexes of the addresses that may open this profile (identity_rules decides)."""
    if not Profile.objects.filter(pk=profile_id, status=ProfileStatus.ACTIVE).exists():
        return []
    return identity_rules.sign_in_addresses(list(
        Identity.objects.filter(profile_id=profile_id).values_list("kind", "blind_index", "assurance")))


def canonical(*, profile_id) -> dict:
    profile = Profile.objects.filter(pk=profile_id).values("status", "merged_into_id").first()
    if profile is None:
        return {"status": "unknown", "profile_id": None}
    if profile["status"] == ProfileStatus.MERGED:
        return {"status": "merged", "profile_id": profile["merged_into_id"]}
    if profile["status"] == ProfileStatus.ERASED:
        return {"status": "erased", "profile_id": None}
    return {"status": "active", "profile_id": UUID(str(profile_id))}


def survivors(*, profile_ids) -> dict:
    return {pid: survivor for pid, survivor in Profile.objects.filter(
        id__in=list(profile_ids), status=ProfileStatus.MERGED).values_list("id", "merged_into_id")}


def aliases(*, profile_id) -> list[UUID]:
    return list(Profile.objects.filter(merged_into_id=profile_id).values_list("id", flat=True))


# --- access export ---------------------------------------------------------------------------------


def export(*, profile_id, aliases: list) -> dict:
    """Everything the profile domain holds on the person, decrypted, with lineage."""
    profile = Profile.objects.select_related("data_key").filter(pk=profile_id).first()
    if profile is None or profile.status != ProfileStatus.ACTIVE:
        return {}
    dek = profile_dek(profile)
    identities = [
        {"kind": i.kind, "namespace": i.namespace or None, "value": identity_value_read(i, dek=dek),
         "introduced_by_record": str(i.record_id) if i.record_id else None,
         "created_at": _iso(i.created_at), "last_seen_at": _iso(i.last_seen_at)}
        for i in Identity.objects.filter(profile=profile).order_by("kind", "id")]
    attributes = [
        {"name": a.name, "value": attribute_value_read(a, dek=dek), "source": a.source.key,
         "source_kind": a.source.kind, "record_id": str(a.record_id) if a.record_id else None,
         "observed_at": _iso(a.observed_at)}
        for a in AttributeValue.objects.filter(profile=profile).select_related("source").order_by("name", "id")]
    records = [
        {"id": str(r.id), "source": r.source.key, "current": r.is_current, "observed_at": _iso(r.observed_at),
         "received_at": _iso(r.received_at), "payload": record_payload_read(r, dek=dek)}
        for r in SourceRecord.objects.filter(profile=profile).select_related("source").order_by("received_at", "id")]
    events = [
        {"id": str(e.id), "source": e.source.key, "type": e.type, "name": e.name or None, "item_id": e.item_id,
         "quantity": e.quantity, "price": str(e.price) if e.price is not None else None, "rating": e.rating,
         "occurred_at": _iso(e.occurred_at), "received_at": _iso(e.received_at), "message_id": e.message_id}
        for e in Event.objects.filter(profile=profile).select_related("source").order_by("occurred_at", "id")]
    titles = item_titles(e["item_id"] for e in events if e["item_id"])  # names a person reads, beside the ids
    for event in events:
        event["item_title"] = titles.get(event["item_id"])
    merges = [
        {"id": str(m.id), "survivor": str(m.survivor_id), "absorbed": str(m.absorbed_id), "reason": m.reason,
         "created_at": _iso(m.created_at), "undone_at": _iso(m.undone_at)}
        for m in Merge.objects.filter(Q(survivor=profile) | Q(absorbed_id__in=aliases)).order_by("created_at")]
    conflicts = [
        {"id": str(c.id), "reason": c.reason, "status": c.status, "created_at": _iso(c.created_at)}
        for c in MergeConflict.objects.filter(profile=profile).order_by("created_at")]
    sections = {
        "profile": {"id": str(profile.id), "status": profile.status, "created_at": _iso(profile.created_at),
                    "updated_at": _iso(profile.updated_at), "merged_profile_ids": [str(a) for a in aliases],
                    "unified_view": _unified(profile_id)},
        "identities": identities,
        "attributes": attributes,
        "source_records": records,
        "events": events,
        "merges": merges,
        "merge_conflicts": conflicts,
        "ingestion_errors": _ingestion_errors(profile),
    }
    return sections


def _unified(profile_id) -> dict:
    view = profile_unified_view(profile_id=profile_id)
    return {"identifiers": view["identifiers"], "attributes": view["attributes"]}


def _identity_keys(profile_ids) -> set[tuple]:
    return set(Identity.objects.filter(profile_id__in=list(profile_ids)).values_list(
        "kind", "namespace", "blind_index"))


def _ingestion_errors(profile: Profile) -> list[dict]:
    """Messages in the Segment ingestion-error log that named one of the person's identifiers."""
    keys = _identity_keys([profile.id])
    if not keys:
        return []
    rows = IngestionErrorIdentifier.objects.filter(blind_index__in=[k[2] for k in keys]).values_list(
        "error_id", "kind", "namespace", "blind_index")
    error_ids = {error_id for error_id, *key in rows if tuple(key) in keys}
    return [{"id": str(e.id), "source": e.source.key, "received_at": _iso(e.received_at), "type": e.message_type,
             "codes": e.codes, "message": ingestion_error_message_read(error=e)}
            for e in IngestionError.objects.filter(id__in=error_ids).select_related("source").order_by("received_at")]


# --- erasure and rectification ----------------------------------------------------------------------


def erase(*, profile_id) -> dict:
    """Crypto-shred the person (and profiles merged into them), suppress their identifiers,
    and shred ingestion-error rows that named them."""
    profile = Profile.objects.filter(pk=profile_id).values("status").first()
    if profile is None or profile["status"] == ProfileStatus.ERASED:
        return {"profile": 0}
    keys = _identity_keys([profile_id])
    shredded = ingestion_errors_shred(identity_keys=keys)
    summary = profile_erase(profile_id=profile_id)
    summary.pop("profile_id", None)
    return {**summary, "ingestion_errors": shredded}


def rectify(*, profile_id, attributes: dict, identifiers: dict) -> dict:
    return profile_rectify(profile_id=profile_id, attributes=attributes, identifiers=identifiers)


# --- retention ------------------------------------------------------------------------------------------


def retention(*, kind: str, source: str | None, older_than, exclude_sources: list[str]):
    if kind == "events":
        # Whole months where it can (PostgreSQL's partitions), rows elsewhere; the rows
        # first, so the drops' table lock is held only until the commit.
        droppable = event_partitions_droppable(older_than=older_than, source=source, exclude_sources=exclude_sources)
        rows = Event.objects.filter(received_before_outside(older_than, droppable))
        deleted = _by_source(rows, "source__key", source, exclude_sources).delete()[0]
        return deleted + event_partitions_drop(droppable)
    if kind == "held_records":
        rows = _by_source(SourceRecord.objects.filter(status=RecordStatus.HELD, received_at__lt=older_than),
                          "source__key", source, exclude_sources)
        key_ids = list(rows.exclude(held_key=None).values_list("held_key_id", flat=True))
        deleted = rows.delete()[1].get(SourceRecord._meta.label, 0)
        DataKey.objects.filter(id__in=key_ids).delete()  # shred: a backup of the rows is unreadable
        return deleted
    if kind == "ingestion_errors":
        rows = _by_source(IngestionError.objects.filter(received_at__lt=older_than), "source__key", source,
                          exclude_sources)
        key_ids = list(rows.exclude(data_key=None).values_list("data_key_id", flat=True))
        deleted = rows.delete()[1].get(IngestionError._meta.label, 0)
        DataKey.objects.filter(id__in=key_ids).delete()
        return deleted
    if kind == "idempotency":
        if source is not None:
            return 0  # idempotency records belong to API keys, not sources
        return IdempotencyRecord.objects.filter(Q(created_at__lt=older_than) | Q(expires_at__lte=timezone.now())
                                                ).delete()[0]
    return None


def _by_source(queryset, field: str, source: str | None, exclude_sources: list[str]):
    if source is not None:
        return queryset.filter(**{field: source})
    if exclude_sources:
        return queryset.exclude(**{f"{field}__in": exclude_sources})
    return queryset


# --- withdrawal -------------------------------------------------------------------------------------------


def withdrawal(*, profile_id, purpose: str) -> None:
    """Third-party attributes leave the unified view at once (it checks `enrichment` when
    read); the version bump and `profile.updated` tell caches and integrators."""
    if purpose != "enrichment":
        return
    if not AttributeValue.objects.filter(profile_id=profile_id, source__kind="third_party").exists():
        return
    profiles_touch([profile_id])
    outbox_put(topic="profile.updated", payload={"profile_id": str(profile_id)})


def register() -> None:
    registry.register(registry.RESOLVE, resolve)
    registry.register(registry.SIGN_IN_ADDRESS, sign_in_address)
    registry.register(registry.SIGN_IN_ADDRESSES, sign_in_addresses_of)
    registry.register(registry.CANONICAL, canonical)
    registry.register(registry.ALIASES, aliases)
    registry.register(registry.SURVIVORS, survivors)
    registry.register(registry.EXPORT, export)
    registry.register(registry.ERASE, erase)
    registry.register(registry.RECTIFY, rectify)
    registry.register(registry.RETENTION, retention)
    registry.register(registry.WITHDRAWAL, withdrawal)

