"""Erasing a profile by crypto-shredding.

Deletes the profile's data key (and those of profiles merged into it), so every
ciphertext of the person becomes unreadable at once, then removes the rows that hold
them and adds the person's identifiers to the suppression list. Reads blind indexes
only; logs nothing personal.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cdp.core.outbox import outbox_put
from cdp.models import (
    AttributeValue,
    DataKey,
    Event,
    HeldIdentifier,
    Identity,
    Profile,
    ProfileStatus,
    SourceRecord,
    Suppression,
)
from cdp.services.profiles import profile_get_live


@transaction.atomic
def profile_erase(*, profile_id) -> dict:
    profile = profile_get_live(profile_id, for_update=True)
    absorbed = list(Profile.objects.filter(merged_into_id=profile.id).values_list("id", flat=True))
    identities = list(Identity.objects.filter(profile=profile).values_list("kind", "namespace", "blind_index"))
    Suppression.objects.bulk_create(
        [Suppression(kind=k, namespace=n, blind_index=b) for k, n, b in identities], ignore_conflicts=True)
    counts = {
        "identities": Identity.objects.filter(profile=profile).delete()[0],
        "attributes": AttributeValue.objects.filter(profile=profile).delete()[0],
        "events": Event.objects.filter(profile=profile).delete()[0],
    }
    record_ids = list(SourceRecord.objects.filter(profile=profile).values_list("id", flat=True))
    HeldIdentifier.objects.filter(record_id__in=record_ids).delete()
    counts["source_records"] = SourceRecord.objects.filter(id__in=record_ids).delete()[0]
    key_ids = list(Profile.objects.filter(id__in=[profile.id, *absorbed]).values_list("data_key_id", flat=True))
    now = timezone.now()
    Profile.objects.filter(id__in=[profile.id, *absorbed]).update(
        status=ProfileStatus.ERASED, data_key=None, erased_at=now, updated_at=now)
    DataKey.objects.filter(id__in=[k for k in key_ids if k]).delete()
    outbox_put(topic="profile.erased", payload={"profile_id": str(profile.id)})
    return {"profile_id": str(profile.id), "suppressed_identifiers": len(identities), **counts}
