"""Small profile helpers shared by the resolution, merge and erasure services."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from cdp import crypto
from cdp.core.bulk import any_of
from cdp.core.errors import NotFound
from cdp.errors import ProfileErased, ProfileMerged
from cdp.models import DataKey, Identity, Profile, ProfileStatus

IDENTITY_FIELD = "identity.value"


def profile_dek(profile: Profile) -> bytes:
    if profile.data_key_id is None:
        raise ProfileErased()
    data_key = profile.data_key if "data_key" in profile._state.fields_cache else DataKey.objects.get(
        pk=profile.data_key_id)
    return crypto.data_key_open(data_key)


def identity_value_encrypt(*, dek: bytes, profile_id, value: str, cipher: crypto.ValueCipher | None = None) -> bytes:
    """`cipher`: a batch's (one AES-GCM context per data key), when there is one."""
    return (cipher or crypto.ValueCipher()).encrypt(dek, owner_id=profile_id, field=IDENTITY_FIELD, value=value)


def identities_add(*, profile: Profile, keys, record, dek: bytes, now) -> None:
    """Store identifiers outside resolution's batch path (corrections, reviewed links), with
    the provenance of the record's source."""
    source = record.source
    Identity.objects.bulk_create([
        Identity(profile=profile, kind=k.kind, namespace=k.namespace, blind_index=k.blind_index,
                 index_key_version=crypto.index_key_version(), record=record, priority=source.trust,
                 source=source, assurance=source.assurance, last_seen_at=now,
                 value=identity_value_encrypt(dek=dek, profile_id=profile.id, value=k.value))
        for k in keys])


def identity_value_read(identity: Identity, *, dek: bytes, cipher: crypto.ValueCipher | None = None) -> str:
    return (cipher or crypto.ValueCipher()).decrypt(dek, owner_id=identity.profile_id, field=IDENTITY_FIELD,
                                                    ciphertext=identity.value)


def identity_value_move(identity: Identity, *, new_profile_id, new_dek: bytes, old_dek: bytes | None = None,
                        value: str | None = None, cipher: crypto.ValueCipher | None = None) -> None:
    """Re-encrypt the value for its new owner and point the identity at it. `value`: the
    plaintext when the caller holds it already (then `old_dek` is not needed)."""
    if value is None:
        value = identity_value_read(identity, dek=old_dek, cipher=cipher)
    identity.profile_id = new_profile_id
    identity.value = identity_value_encrypt(dek=new_dek, profile_id=new_profile_id, value=value, cipher=cipher)


def profiles_touch(profile_ids) -> None:
    """Bump version (the ETag) and updated_at of changed profiles."""
    ids = list(profile_ids)
    if ids:
        Profile.objects.filter(any_of(Profile, "id", ids)).update(version=F("version") + 1, updated_at=timezone.now())


def profile_get_live(profile_id, *, for_update: bool = False) -> Profile:
    """An active profile, or the right error for a merged-away, erased or unknown id."""
    queryset = Profile.objects.select_related("data_key")
    if for_update:
        queryset = queryset.select_for_update(of=("self",))
    profile = queryset.filter(pk=profile_id).first()
    if profile is None:
        raise NotFound("No profile has this id.")
    if profile.status == ProfileStatus.ERASED:
        raise ProfileErased()
    if profile.status == ProfileStatus.MERGED:
        raise ProfileMerged("The profile was merged into another.", extra={"merged_into": str(profile.merged_into_id)})
    return profile
