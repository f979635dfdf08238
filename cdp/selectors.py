"""Reading profiles: the decrypted unified view with lineage, and lookups.

Decrypts identifiers and attribute values in memory. `profile_read` is what hands a
profile to someone: it writes the access-log row itself (consent.services.access), so no
caller can forget it; `profile_unified_view` is the building block, for code that keeps
the data inside Tessera (exports write their own row). Logs nothing personal.
"""

from __future__ import annotations

from collections import defaultdict
from uuid import UUID

from cdp.core.errors import NotFound
from cdp.core.http.pagination import Page, paginate
from cdp.core.identifiers import GLOBAL_KINDS
from cdp.errors import ProfileErased
from cdp.models import AttributeValue, Event, Identity, Item, Profile, ProfileStatus, Source, SourceKind, SourceRecord
from cdp.services.attributes import attribute_value_read
from cdp.services.profiles import identity_value_read, profile_dek
from cdp.services.records import IdentifierKey, parse_identifiers
from consent import policy
from consent.services.access import Accessor, subject_data_read


def profile_unified_view(*, profile_id) -> dict:
    """The profile as CONTRACT.md shapes it, or {"id", "merged_into"} for a merged id."""
    profile = Profile.objects.select_related("data_key").filter(pk=profile_id).first()
    if profile is None:
        raise NotFound("No profile has this id.")
    if profile.status == ProfileStatus.ERASED:
        raise ProfileErased()
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


def profile_read(*, profile_id, accessor: Accessor) -> dict:
    """The unified view for `accessor`; an active profile's read is logged (field names
    only) and honours the request's GPC signal. A merged-away id's answer holds no
    personal data and is not logged."""
    view = profile_unified_view(profile_id=profile_id)
    if "merged_into" not in view:
        subject_data_read(accessor=accessor, profile_id=view["id"], fields=profile_fields(view),
                          purpose="api_profile_read")
    return view


def profile_fields(view: dict) -> list[str]:
    """Field names (never values) a profile view discloses."""
    fields = [f"identifiers.{kind}" for kind in view.get("identifiers", {})]
    fields += [f"attributes.{name}" for name in view.get("attributes", {})]
    return fields


def profile_events_page(*, profile_id, query_params, accessor: Accessor) -> Page:
    """A page of a person's events for `accessor`, oldest first (by occurred_at); the page
    read is logged and honours the request's GPC signal."""
    page = paginate(profile_events(profile_id=profile_id), query_params=query_params, ordering=("occurred_at", "id"))
    subject_data_read(accessor=accessor, profile_id=profile_id, fields=["events"], purpose="api_events_read")
    return page


def profile_events(*, profile_id):
    """A person's events (a queryset, for the caller to order and page); a merged-away id
    reads its survivor's, which hold the absorbed profile's events since the merge."""
    row = Profile.objects.filter(pk=profile_id).values_list("status", "merged_into_id").first()
    if row is None:
        raise NotFound("No profile has this id.")
    status, merged_into = row
    if status == ProfileStatus.ERASED:
        raise ProfileErased()
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


def item_titles(item_ids) -> dict[str, str]:
    """Catalogue titles by item id (ids no longer in the catalogue are left out)."""
    return dict(Item.objects.filter(id__in=list(set(item_ids))).values_list("id", "title"))


def source_by_key(source_key: str) -> Source | None:
    return Source.objects.filter(key=source_key).first()


def profiles_contributed_by_source(*, profile_ids, source_id) -> set[UUID]:
    """The ids among `profile_ids` whose person `source_id` contributed: the profile holds at
    least one record from that source (attached; current or an older version).

    The rule behind "a key bound to a source sees only its own" (cdp.core.http.permissions). A
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


def profile_ids_by_identifiers(pairs, *, source_key: str | None = None, region: str | None = None,
                               strict: bool = False) -> dict:
    """{(kind, value): active profile id} for the pairs that name someone, in one query.

    The one identifier → profile lookup (API lookups, the console, data-subject requests,
    sign-in). Junk values (`"null"`, a blocked address) name nobody. A malformed value
    names nobody too, unless `strict`: then it raises ValueError with its error code, for
    callers that must tell the sender (a data-subject request filed by identifier).
    `source_key` is the namespace of source-scoped kinds (crm_id, user_id); `region` says
    how a phone without "+" is read (records.phone_region).
    """
    wanted: dict[tuple, tuple] = {}
    for kind, value in pairs:
        namespace_source = "" if kind in GLOBAL_KINDS else (source_key or "")
        keys, errors = parse_identifiers({kind: value}, source_key=namespace_source, region=region)
        if errors and strict:
            raise ValueError(errors[0]["code"])
        if keys and not errors:
            key: IdentifierKey = keys[0]
            wanted[key.key] = (kind, value)
    if not wanted:
        return {}
    rows = Identity.objects.filter(blind_index__in=[k[2] for k in wanted],
                                   profile__status=ProfileStatus.ACTIVE).values_list(
        "kind", "namespace", "blind_index", "profile_id")
    return {wanted[(k, n, b)]: profile_id for k, n, b, profile_id in rows if (k, n, b) in wanted}
