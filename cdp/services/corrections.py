"""Operator corrections and rectification of a profile (PATCH /api/v1/profiles/{id}; a DSR rectification).

A correction is stored like any source's record: a SourceRecord of the `operator`
source (first party, trust 1000, created on first use) encrypted under the profile's
data key, identities introduced by that record and attribute rows whose lineage names
`operator`, so survivorship prefers them and an unmerge or rebuild keeps them. Unlike a
batch record it never resolves to another person: an identifier that already belongs
to someone else is refused (409), not merged.

Reads and writes ciphertexts and blind indexes; logs nothing personal.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from cdp.core.advisory import advisory_locks
from cdp.core.errors import Conflict
from cdp.core.http.errors import InvalidInput, PayloadTooLarge, PreconditionFailed
from cdp.core.identifiers import ATTRIBUTE_NAME, SOURCE_SCOPED_KINDS
from cdp.core.outbox import outbox_put
from cdp.core.pseudonyms import keyed_digest
from cdp.errors import CdpErrorCode
from cdp.models import Assurance, AttributeValue, Identity, Profile, Source, SourceKind, SourceRecord, Suppression
from cdp.services.attributes import attribute_row_fill, attribute_value_read
from cdp.services.merges import identities_trim_to_caps
from cdp.services.profiles import identities_add, profile_dek, profile_get_live, profiles_touch
from cdp.services.records import (
    MAX_RECORD_BYTES,
    error,
    external_key_for,
    parse_identifiers,
    phone_region,
)
from cdp.services.source_records import record_payload_read, record_payload_write

OPERATOR_SOURCE_KEY = "operator"
OPERATOR_TRUST = 1000


@dataclass
class CorrectionResult:
    profile_id: str
    status: str  # "updated" or "unchanged"
    version: int


def operator_source() -> Source:
    source, _ = Source.objects.get_or_create(
        key=OPERATOR_SOURCE_KEY,
        defaults={"name": "Operator corrections", "kind": SourceKind.FIRST_PARTY, "trust": OPERATOR_TRUST,
                  "assurance": Assurance.VERIFIED})
    return source


@transaction.atomic
def profile_correct(*, profile_id, attributes: dict, identifiers: dict,
                    expected_versions: set[int] | None) -> CorrectionResult:
    """Apply corrections if the profile is still at one of `expected_versions` (None: any)."""
    keys = _parse(attributes, identifiers)
    # Same lock order as resolution (identifier locks, then the profile row), so a
    # correction and a batch naming the same person queue instead of deadlocking.
    advisory_locks(sorted(k.blind_index for k in keys))
    profile = profile_get_live(profile_id, for_update=True)
    if expected_versions is not None and profile.version not in expected_versions:
        raise PreconditionFailed("The profile changed since this version; read it again (ETag) and retry.")
    dek = profile_dek(profile)
    new_keys = _new_identifiers(profile, keys)
    source = operator_source()
    changed = _changed_attributes(profile, source, attributes, dek=dek)
    if not new_keys and not changed:
        return CorrectionResult(str(profile.id), "unchanged", profile.version)

    now = timezone.now()
    external_id = f"correction:{uuid.uuid4()}"
    record = SourceRecord(source=source, profile=profile, observed_at=now,
                          external_key=external_key_for(source_key=source.key, external_id=external_id))
    payload = {"external_id": external_id, "identifiers": {k.kind: k.value for k in new_keys},
               "attributes": changed, "observed_at": now.isoformat()}
    record.payload_digest = keyed_digest(json.dumps([source.key, payload], sort_keys=True, default=str),
                                                purpose="record-payload")
    record_payload_write(record, payload, dek=dek)
    record.save()
    identities_add(profile=profile, keys=new_keys, record=record, dek=dek, now=now)
    identities_trim_to_caps(profile_id=profile.id)  # the operator's identifier outranks the oldest
    _store_attributes(profile, source, record, changed, dek=dek, observed_at=now)
    profiles_touch([profile.id])
    outbox_put(topic="profile.updated", payload={"profile_id": str(profile.id)})
    version = Profile.objects.values_list("version", flat=True).get(pk=profile.id)
    return CorrectionResult(str(profile.id), "updated", version)


def profile_rectify(*, profile_id, attributes: dict, identifiers: dict) -> dict:
    """A rectification (a data-subject request): set or remove attributes, add identifiers.

    Values set are recorded like an operator correction (highest trust, with lineage); a
    removed attribute is deleted from the unified view and from every stored record of
    the person, so no rebuild brings it back."""
    to_set = {name: value for name, value in attributes.items() if value is not None}
    to_remove = sorted(name for name, value in attributes.items() if value is None)
    summary = {"attributes_set": 0, "attributes_removed": 0, "identifiers_added": 0}
    if to_set or identifiers:
        result = profile_correct(profile_id=profile_id, attributes=to_set, identifiers=identifiers,
                                 expected_versions=None)
        if result.status == "updated":
            summary["attributes_set"], summary["identifiers_added"] = len(to_set), len(identifiers)
    if to_remove:
        profile = Profile.objects.select_related("data_key").get(pk=profile_id)
        dek = profile_dek(profile)
        summary["attributes_removed"] = AttributeValue.objects.filter(
            profile=profile, name__in=to_remove).delete()[0]
        for record in SourceRecord.objects.filter(profile=profile):
            payload = record_payload_read(record, dek=dek)
            present = [name for name in to_remove if name in payload.get("attributes", {})]
            if present:
                for name in present:
                    payload["attributes"].pop(name)
                record_payload_write(record, payload, dek=dek)
                record.save(update_fields=["payload"])
        profiles_touch([profile.id])
        outbox_put(topic="profile.updated", payload={"profile_id": str(profile.id)})
    return summary


def _parse(attributes: dict, identifiers: dict) -> list:
    errors = []
    for name, value in attributes.items():
        if not ATTRIBUTE_NAME.match(str(name)):
            # An invalid name is the rejected value itself: not repeated in the path.
            errors.append(error("attributes", "invalid_name",
                                "Attribute names are lower-case letters, digits and underscores."))
        elif value is None:
            errors.append(error(f"attributes.{name}", "null_not_allowed",
                                "A correction sets values; removing one is a rectification request."))
    for kind in identifiers:
        if kind in SOURCE_SCOPED_KINDS:
            errors.append(error(f"identifiers.{kind}", "not_correctable",
                                "crm_id and user_id belong to their source; correct them there."))
    global_identifiers = {k: v for k, v in identifiers.items() if k not in SOURCE_SCOPED_KINDS}
    keys, id_errors = parse_identifiers(global_identifiers, source_key=OPERATOR_SOURCE_KEY,
                                        region=phone_region(attributes))
    errors.extend(id_errors)
    if not errors and not keys and not attributes:
        errors.append(error("body", "empty_correction", "Name at least one attribute or usable identifier."))
    if errors:
        raise InvalidInput("The correction is not valid.", errors=errors)
    if len(json.dumps({"attributes": attributes, "identifiers": identifiers}, default=str)) > MAX_RECORD_BYTES:
        raise PayloadTooLarge(f"A correction may hold at most {MAX_RECORD_BYTES} bytes.")
    return keys


def _new_identifiers(profile: Profile, keys: list) -> list:
    """Identifiers the profile does not hold yet; one held by anyone else is a conflict."""
    if not keys:
        return []
    indexes = [k.blind_index for k in keys]
    wanted = {k.key for k in keys}
    suppressed = set(Suppression.objects.filter(blind_index__in=indexes).values_list(
        "kind", "namespace", "blind_index")) & wanted
    if suppressed:
        kinds = sorted({key[0] for key in suppressed})
        raise Conflict("An identifier belongs to an erased person and stays suppressed.",
                       code=CdpErrorCode.IDENTIFIER_SUPPRESSED,
                       extra={"errors": [error(f"identifiers.{kind}", "suppressed", "Suppressed identifier.")
                                         for kind in kinds]})
    owners = {(k, n, b): p for k, n, b, p in Identity.objects.filter(blind_index__in=indexes).values_list(
        "kind", "namespace", "blind_index", "profile_id") if (k, n, b) in wanted}
    taken = sorted({key[0] for key, owner in owners.items() if owner != profile.id})
    if taken:
        raise Conflict("An identifier already belongs to another profile; merge or unmerge instead.",
                       code=CdpErrorCode.IDENTIFIER_CONFLICT,
                       extra={"errors": [error(f"identifiers.{kind}", "identifier_conflict",
                                               "Held by another profile.") for kind in taken]})
    return [k for k in keys if k.key not in owners]


def _changed_attributes(profile: Profile, source: Source, attributes: dict, *, dek: bytes) -> dict:
    current = {row.name: row for row in AttributeValue.objects.filter(profile=profile, source=source,
                                                                      name__in=list(attributes))}
    return {name: value for name, value in attributes.items()
            if name not in current or attribute_value_read(current[name], dek=dek) != value}


def _store_attributes(profile: Profile, source: Source, record: SourceRecord, changed: dict, *, dek: bytes,
                      observed_at) -> None:
    existing = {row.name: row for row in AttributeValue.objects.filter(profile=profile, source=source,
                                                                       name__in=list(changed))}
    new_rows, updated = [], []
    for name, value in changed.items():
        row = existing.get(name) or AttributeValue(profile=profile, name=name, source=source)
        attribute_row_fill(row, dek=dek, value=value, record_id=record.id, observed_at=observed_at)
        (updated if row.pk else new_rows).append(row)
    AttributeValue.objects.bulk_create(new_rows)
    AttributeValue.objects.bulk_update(updated, ["value_cipher", "value_plain", "is_personal", "record",
                                                 "observed_at"])
