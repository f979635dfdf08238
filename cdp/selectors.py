"""Reading profiles: the decrypted unified view with lineage, and lookups.

Decrypts identifiers and attribute values in memory for the caller; logs nothing
personal (access to decrypted data is recorded by the callers' access log).
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from cdp.core.errors import Gone, NotFound
from cdp.core.identifiers import GLOBAL_KINDS
from cdp.models import AttributeValue, Event, Identity, Profile, ProfileStatus, SourceKind, SourceRecord
from cdp.services.attributes import attribute_value_read
from cdp.services.profiles import identity_value_read, profile_dek
from cdp.services.records import IdentifierKey, parse_identifiers
from consent import policy


def profile_unified_view(*, profile_id) -> dict:
    """The profile as CONTRACT.md shapes it, or {"id", "merged_into"} for a merged id."""
    profile = Profile.objects.select_related("data_key").filter(pk=profile_id).first()
    if profile is None:
        raise NotFound("No profile has this id.")
    if profile.status == ProfileStatus.ERASED:
        raise Gone("The profile was erased.", code="erased")
    if profile.status == ProfileStatus.MERGED:
        return {"id": str(profile.id), "merged_into": str(profile.merged_into_id)}
    dek = profile_dek(profile)
    identifiers: dict[str, list[str]] = defaultdict(list)
    for identity in Identity.objects.filter(profile=profile).order_by("kind", "id"):
        identifiers[identity.kind].append(identity_value_read(identity, dek=dek))
    return {
        "id": str(profile.id),
        "identifiers": dict(identifiers),
        "attributes": unified_attributes(profile, dek=dek),
        "created_at": profile.created_at.isoformat(),
        "updated_at": profile.updated_at.isoformat(),
        "version": profile.version,
    }


def profile_events(*, profile_id):
    """A person's events (a queryset, for the caller to order and page); a merged-away id
    reads its survivor's, which hold the absorbed profile's events since the merge."""
    row = Profile.objects.filter(pk=profile_id).values_list("status", "merged_into_id").first()
    if row is None:
        raise NotFound("No profile has this id.")
    status, merged_into = row
    if status == ProfileStatus.ERASED:
        raise Gone("The profile was erased.", code="erased")
    holder = merged_into if status == ProfileStatus.MERGED and merged_into else profile_id
    return Event.objects.filter(profile_id=holder).select_related("source")


def unified_attributes(profile: Profile, *, dek: bytes) -> dict:
    """Survivorship: per attribute the highest-trust source wins, then the newest value.

    Third-party values take part only while the person allows `enrichment`.
    """
    enrichment = policy.is_allowed(profile.id, "enrichment")
    best: dict[str, AttributeValue] = {}
    rows = AttributeValue.objects.filter(profile=profile).select_related("source")
    for row in rows:
        if row.source.kind == SourceKind.THIRD_PARTY and not enrichment:
            continue
        current = best.get(row.name)
        if current is None or (row.source.trust, row.observed_at) > (current.source.trust, current.observed_at):
            best[row.name] = row
    return {
        name: {"value": attribute_value_read(row, dek=dek), "source": row.source.key,
               "record_id": str(row.record_id) if row.record_id else None,
               "observed_at": row.observed_at.isoformat()}
        for name, row in sorted(best.items())
    }


def profiles_contributed_by_source(*, profile_ids, source_id) -> set[UUID]:
    """The ids among `profile_ids` whose person `source_id` contributed: the profile holds at
    least one record from that source (attached; current or an older version).

    The rule behind "a key bound to a source sees only its own" (cdp.api.permissions). A
    merge moves the absorbed profile's records to the survivor, so a source that
    contributed to either side sees the survivor, and a merged-away id counts as its
    survivor (merged_into always names the final one); an unmerge moves the records
    back. Erasure deletes a person's records: an erased profile is nobody's. Unknown ids
    are left out. Two indexed queries whatever the number of ids.
    """
    ids = set()
    for pid in profile_ids:
        ids.add(pid if isinstance(pid, UUID) else UUID(str(pid)))
    if not ids:
        return set()
    holder = {pid: merged_into or pid
              for pid, merged_into in Profile.objects.filter(id__in=ids).values_list("id", "merged_into_id")}
    contributed = set(SourceRecord.objects.filter(profile_id__in=set(holder.values()), source_id=source_id)
                      .values_list("profile_id", flat=True).distinct())
    return {pid for pid, owner in holder.items() if owner in contributed}


def profile_ids_by_identifier(*, kind: str, value, source_key: str | None = None, region: str | None = None) -> list:
    """Active profiles holding this identifier (at most one, by the uniqueness rule).
    `region`: how a phone without "+" is read (records.phone_region)."""
    found = profile_ids_by_identifiers([(kind, value)], source_key=source_key, region=region)
    return [found[(kind, value)]] if (kind, value) in found else []


def profile_ids_by_identifiers(pairs, *, source_key: str | None = None, region: str | None = None) -> dict:
    """{(kind, value): active profile id} for the pairs that name someone, in one query."""
    wanted: dict[tuple, tuple] = {}
    for kind, value in pairs:
        namespace_source = "" if kind in GLOBAL_KINDS else (source_key or "")
        keys, errors = parse_identifiers({kind: value}, source_key=namespace_source, region=region)
        if keys and not errors:
            key: IdentifierKey = keys[0]
            wanted[key.key] = (kind, value)
    if not wanted:
        return {}
    rows = Identity.objects.filter(blind_index__in=[k[2] for k in wanted],
                                   profile__status=ProfileStatus.ACTIVE).values_list(
        "kind", "namespace", "blind_index", "profile_id")
    return {wanted[(k, n, b)]: profile_id for k, n, b, profile_id in rows if (k, n, b) in wanted}
