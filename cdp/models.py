"""The profile domain: sources, raw records, unified profiles, identities, merges,
and the interaction data (items, events) personalization learns from.

Personal data lives only in BinaryField ciphertexts (AES-GCM under the profile's data
key, see cdp.crypto); lookups go through keyed blind indexes. `__str__` methods return
ids only, so the admin log's `object_repr` never holds personal data.

The rows ingestion writes by the thousand (records, identities, attribute values, events,
and a profile's data key) reference their profile, source and record without a database
foreign-key constraint (`db_constraint=False`): PostgreSQL would check each row at commit
with a locking lookup, ~40% of ingestion's database time, repeating what the resolver
already holds (the profiles it writes under are locked, the records are its own). Django
still applies `on_delete` to them, and `cdp.integrity.dangling_references` (the
`check_integrity` command) finds any row whose target is missing.
"""

from __future__ import annotations

import uuid
from datetime import UTC, tzinfo
from zoneinfo import ZoneInfo

from django.db import models
from django.db.models import Q

from cdp.core.timestamps import time_zone_validate


class SourceKind(models.TextChoices):
    FIRST_PARTY = "first_party", "First party"
    THIRD_PARTY = "third_party", "Third party"


class Assurance(models.TextChoices):
    """How far a source is trusted to say which person an email or phone belongs to
    (cdp.services.identity_rules decides what each level may link)."""

    VERIFIED = "verified", "Verified (a server-side system that verified the address)"
    ASSERTED = "asserted", "Asserted (a server-side system)"
    CLIENT = "client", "Client (a write key used in browsers or apps: public)"


class Source(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=SourceKind.choices)
    trust = models.IntegerField(default=50, help_text="Higher trust wins survivorship.")
    assurance = models.CharField(max_length=8, choices=Assurance.choices, default=Assurance.ASSERTED,
                                 help_text="How far its identifiers are trusted: 'client' for write keys used "
                                           "in browsers and apps.")
    time_zone = models.CharField(max_length=64, blank=True, default="", validators=[time_zone_validate],
                                 help_text="IANA time zone in which this source's timestamps without an offset are "
                                           "read (empty: UTC).")
    # Segment write key: only its SHA-256 is kept, the key is shown once at creation.
    write_key_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    write_key_prefix = models.CharField(max_length=12, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key

    @property
    def is_third_party(self) -> bool:
        return self.kind == SourceKind.THIRD_PARTY

    @property
    def zone(self) -> tzinfo:
        """Where its timestamps without an offset are read: its time zone, else UTC."""
        return ZoneInfo(self.time_zone) if self.time_zone else UTC


class DataKey(models.Model):
    """A data encryption key, stored only wrapped by a master key (envelope encryption).

    Deleting the row crypto-shreds everything encrypted under it.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kek_id = models.CharField(max_length=32, help_text="Which master key wrapped it.")
    wrapped = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # Rotation finds keys by equality only: a plain index (db_index=True would add a
        # second, pattern-ops one that every new profile's key also writes).
        indexes = [models.Index(fields=["kek_id"], name="datakey_kek_idx")]

    def __str__(self) -> str:
        return f"data key {self.id}"


class ProfileStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    MERGED = "merged", "Merged into another profile"
    ERASED = "erased", "Erased"


class Profile(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=8, choices=ProfileStatus.choices, default=ProfileStatus.ACTIVE)
    # Indexed only where set (profile_merged_into_idx): a new profile writes no entry.
    merged_into = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="absorbed", db_index=False)
    data_key = models.OneToOneField(DataKey, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="profile", db_constraint=False)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change; the ETag.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "id"], name="profile_status_idx"),
            models.Index(fields=["merged_into"], condition=Q(merged_into__isnull=False),
                         name="profile_merged_into_idx"),
        ]

    def __str__(self) -> str:
        return str(self.id)


class RecordStatus(models.TextChoices):
    ATTACHED = "attached", "Attached to a profile"
    HELD = "held", "Held (third party, person not yet known)"


class SourceRecord(models.Model):
    """One record as a source sent it, kept whole (encrypted) for lineage.

    A new payload for the same (source, external id) is stored as a new version; the
    previous one stays, no longer current. Held third-party records have their own data
    key until a first-party record identifies the person.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # No single-column indexes on source and profile (an ingested record writes every
    # index): record_one_current_version and record_profile_idx start with them.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="records", db_index=False,
                               db_constraint=False)
    # External ids can be personal (some CRMs use the email): only a blind index is stored.
    external_key = models.CharField(max_length=64)
    profile = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.CASCADE,
                                related_name="records", db_index=False, db_constraint=False)
    status = models.CharField(max_length=8, choices=RecordStatus.choices, default=RecordStatus.ATTACHED)
    # One record per key, enforced only where set (record_held_key_unique): the attached
    # records (nearly all) write no index entry for it.
    held_key = models.ForeignKey(DataKey, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="held_records", db_index=False)
    payload = models.BinaryField()
    payload_digest = models.CharField(max_length=64)
    is_current = models.BooleanField(default=True)
    observed_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["profile", "received_at"], name="record_profile_idx"),
            # Retention looks for old held records only: attached ones (nearly all) stay
            # out of this index.
            models.Index(fields=["received_at"], condition=Q(status="held"), name="record_held_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["source", "external_key"], condition=Q(is_current=True),
                                    name="record_one_current_version"),
            models.UniqueConstraint(fields=["held_key"], condition=Q(held_key__isnull=False),
                                    name="record_held_key_unique"),
            models.CheckConstraint(
                condition=(Q(status="attached", profile__isnull=False) | Q(status="held", profile__isnull=True)),
                name="record_attached_xor_held",
            ),
        ]

    def __str__(self) -> str:
        return str(self.id)


class HeldIdentifier(models.Model):
    """Blind indexes of a held record's identifiers, to attach it when the person appears."""

    record = models.ForeignKey(SourceRecord, on_delete=models.CASCADE, related_name="held_identifiers")
    kind = models.CharField(max_length=16)
    namespace = models.CharField(max_length=64, blank=True)
    blind_index = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["blind_index", "kind", "namespace"], name="held_identifier_idx")]


class Identity(models.Model):
    """One identifier of one person; unique per (kind, namespace, blind index)."""

    id = models.BigAutoField(primary_key=True)
    # identity_profile_idx starts with profile: no index of its own.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities", db_index=False,
                                db_constraint=False)
    kind = models.CharField(max_length=16)
    namespace = models.CharField(max_length=64, blank=True, help_text="Source key for source-scoped ids.")
    blind_index = models.CharField(max_length=64)
    index_key_version = models.CharField(max_length=32)
    value = models.BinaryField(help_text="Normalized value, encrypted under the profile's data key.")
    # The record that introduced it, always one of the same profile's records (they move
    # together in merges and unmerges). Unindexed: a random-uuid index entry for every
    # identity, read only when records are deleted, and erasure deletes a profile's
    # identities before its records (check_integrity finds a row left pointing nowhere).
    record = models.ForeignKey(SourceRecord, null=True, blank=True, on_delete=models.DO_NOTHING,
                               related_name="introduced_identities", db_index=False, db_constraint=False)
    priority = models.IntegerField(default=0, help_text="Trust of the source that introduced it.")
    # Provenance: the most trusted source that asserted this identifier for this profile,
    # and its assurance then (a more trusted source asserting it later takes over).
    # Unindexed and unconstrained, as `record`: read with the identity, never searched by.
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               db_index=False, db_constraint=False)
    assurance = models.CharField(max_length=8, choices=Assurance.choices, default=Assurance.ASSERTED)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "identities"
        constraints = [
            models.UniqueConstraint(fields=["blind_index", "kind", "namespace"], name="identity_unique_key"),
        ]
        indexes = [models.Index(fields=["profile", "kind"], name="identity_profile_idx")]

    def __str__(self) -> str:
        return f"{self.kind} identity #{self.id}"


class AttributeValue(models.Model):
    """The newest value of one attribute from one source for one profile, with lineage.

    The unified view picks among a profile's rows per name (survivorship) at read time,
    so consent to enrichment can include or exclude third-party rows instantly.
    """

    id = models.BigAutoField(primary_key=True)
    # attribute_one_per_source starts with profile: no index of its own.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="attribute_values",
                                db_index=False, db_constraint=False)
    name = models.CharField(max_length=64)
    # No index on source: only deleting a source asks for it (PROTECT), a rare admin act.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False,
                               db_constraint=False)
    # Unindexed, as Identity.record: erasure deletes a profile's attribute values first.
    record = models.ForeignKey(SourceRecord, null=True, blank=True, on_delete=models.DO_NOTHING,
                               related_name="+", db_index=False, db_constraint=False)
    observed_at = models.DateTimeField()
    is_personal = models.BooleanField(default=True)
    value_cipher = models.BinaryField(null=True, blank=True)
    value_plain = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["profile", "name", "source"], name="attribute_one_per_source"),
        ]

    def __str__(self) -> str:
        return f"attribute #{self.id}"


class Merge(models.Model):
    """One profile absorbed into another, with what moved, so it can be undone."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    survivor = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_survived")
    absorbed = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="merges_absorbed")
    moved_records = models.JSONField(default=list)
    moved_identities = models.JSONField(default=list)
    absorbed_profiles = models.JSONField(default=list, help_text="The absorbed profile and those it had absorbed.")
    trigger_record = models.ForeignKey(SourceRecord, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    reason = models.CharField(max_length=32, default="shared_identifier")
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"merge {self.id}"


class MergeBlock(models.Model):
    """Two profiles an operator separated: resolution never merges them again."""

    profile_low = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    profile_high = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="+")
    merge = models.ForeignKey(Merge, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile_low", "profile_high"], name="merge_block_pair")]


class ConflictStatus(models.TextChoices):
    OPEN = "open", "Awaiting review"
    RESOLVED = "resolved", "Resolved"


class MergeConflict(models.Model):
    """A merge that protection refused; the record went to `profile`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    record = models.ForeignKey(SourceRecord, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="conflicts")
    other_profiles = models.JSONField(default=list)
    reason = models.CharField(max_length=48)
    status = models.CharField(max_length=8, choices=ConflictStatus.choices, default=ConflictStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"], name="conflict_status_idx")]

    def __str__(self) -> str:
        return f"conflict {self.id}"


class Suppression(models.Model):
    """Identifiers of erased people: a record naming one is answered `suppressed`."""

    kind = models.CharField(max_length=16)
    namespace = models.CharField(max_length=64, blank=True)
    blind_index = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["blind_index", "kind", "namespace"], name="suppression_unique"),
        ]


class Item(models.Model):
    id = models.CharField(primary_key=True, max_length=128)
    title = models.CharField(max_length=300)
    category = models.CharField(max_length=100, db_index=True)
    description = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.id


class EventType(models.TextChoices):
    VIEW = "view", "View"
    ADD_TO_CART = "add_to_cart", "Add to cart"
    PURCHASE = "purchase", "Purchase"
    RATING = "rating", "Rating"
    CUSTOM = "custom", "Custom"


class Event(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # event_profile_time_idx starts with profile: no index of its own.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="events", db_index=False,
                                db_constraint=False)
    # The profile the event was first attributed to: an unmerge moves it back.
    origin_profile_id = models.UUIDField()
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False,
                               db_constraint=False)
    type = models.CharField(max_length=16, choices=EventType.choices)
    name = models.CharField(max_length=200, blank=True)
    item_id = models.CharField(max_length=128, null=True, blank=True)
    quantity = models.IntegerField(null=True, blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    rating = models.FloatField(null=True, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    message_id = models.CharField(max_length=200, null=True, blank=True)

    class Meta:
        # Events are read by person (features, recommendations, exports, merges and
        # their undoing) and by message id, and every stored event writes every index:
        # so none by type, item, origin or source.
        indexes = [
            models.Index(fields=["profile", "occurred_at"], name="event_profile_time_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["source", "message_id"], condition=Q(message_id__isnull=False),
                                    name="event_message_unique"),
        ]

    def __str__(self) -> str:
        return f"event {self.id}"
