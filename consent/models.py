"""Consent, its proof, data-subject requests and the access log.

Subjects are pseudonymous profile ids (plain UUIDs, no foreign key: consent depends on
no other app of ours, and the record must outlive an erased profile). Nothing here holds
a personal value in plaintext: evidence is keyed hashes, request payloads (rectification
changes, access exports) are ciphertexts under a per-request data key that is deleted
when it is no longer needed.

Append-only tables (ConsentEvent, AccessLog, DsrAuditEntry) refuse updates and deletes
through the ORM here, and through SQL by a PostgreSQL trigger (migration 0002).
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from consent.purposes import PURPOSES

PURPOSE_CHOICES = [(p, p) for p in PURPOSES]


class AppendOnlyError(Exception):
    """An update or delete of an append-only row was attempted."""


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: they are never updated.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only: they are never deleted.")

    _raw_delete = delete


class AppendOnlyModel(models.Model):
    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # The one exception to "nothing in save()": an append-only row may be written once.
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only: they are never updated.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only: they are never deleted.")


# --- purposes, bases and notices --------------------------------------------------------------


class Basis(models.TextChoices):
    CONSENT = "consent", "Consent (opt-in)"
    LEGITIMATE_INTEREST = "legitimate_interest", "Legitimate interest (opt-out)"
    CONTRACT = "contract", "Contract"


DEFAULT_JURISDICTION = "*"


class PurposeBasis(models.Model):
    """A compliance officer's choice of legal basis for one purpose in one jurisdiction.

    No row means consent (opt-in). Jurisdiction `*` applies where no row names the
    subject's own jurisdiction.
    """

    purpose = models.CharField(max_length=32, choices=PURPOSE_CHOICES)
    jurisdiction = models.CharField(max_length=16, default=DEFAULT_JURISDICTION,
                                    help_text="e.g. EU, GB, US-CA; * for everywhere else.")
    basis = models.CharField(max_length=24, choices=Basis.choices, default=Basis.CONSENT)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["purpose", "jurisdiction"], name="purpose_basis_unique")]
        verbose_name_plural = "purpose bases"

    def __str__(self) -> str:
        return f"{self.purpose} in {self.jurisdiction}: {self.basis}"


class NoticeVersion(models.Model):
    """One version of the notice shown for a purpose.

    `material` versions require re-consent: a grant recorded under an older version no
    longer counts. `lifetime_days` makes grants under this version expire.
    """

    purpose = models.CharField(max_length=32, choices=PURPOSE_CHOICES)
    version = models.PositiveIntegerField()
    material = models.BooleanField(default=False, help_text="Grants under earlier versions need re-consent.")
    lifetime_days = models.PositiveIntegerField(null=True, blank=True,
                                                help_text="Grants expire after this many days; empty: never.")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["purpose", "version"], name="notice_version_unique")]
        ordering = ["purpose", "version"]

    def __str__(self) -> str:
        return f"{self.purpose} notice v{self.version}"


class NoticeText(models.Model):
    """The text of a notice version in one language (translations)."""

    notice = models.ForeignKey(NoticeVersion, on_delete=models.CASCADE, related_name="texts")
    language = models.CharField(max_length=16, default="en")
    title = models.CharField(max_length=200)
    body = models.TextField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["notice", "language"], name="notice_text_unique")]

    def __str__(self) -> str:
        return f"{self.notice} ({self.language})"


class ServedNotice(models.Model):
    """A notice was shown to a person (append-only in practice; purged by retention)."""

    id = models.BigAutoField(primary_key=True)
    profile_id = models.UUIDField()
    purpose = models.CharField(max_length=32, choices=PURPOSE_CHOICES)
    notice_version = models.PositiveIntegerField()
    language = models.CharField(max_length=16, default="en")
    channel = models.CharField(max_length=24)
    served_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["profile_id", "served_at"], name="served_notice_profile_idx")]

    def __str__(self) -> str:
        return f"served notice #{self.id}"


class Subject(models.Model):
    """What consent knows about a subject besides its decisions: its jurisdiction."""

    profile_id = models.UUIDField(primary_key=True)
    jurisdiction = models.CharField(max_length=16, default=DEFAULT_JURISDICTION)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return str(self.profile_id)


# --- the ledger -------------------------------------------------------------------------------


class Channel(models.TextChoices):
    PREFERENCE_CENTER = "preference_center", "Preference center"
    API = "api", "API"
    CRM_SYNC = "crm_sync", "CRM sync"
    CMP = "cmp", "Consent management platform"
    GPC = "gpc", "Global Privacy Control"
    OPERATOR = "operator", "Operator"
    IMPORT = "import", "Import"
    MERGE = "merge", "Profile merge"


CHANNELS = tuple(Channel.values)


class ConsentEvent(AppendOnlyModel):
    """One consent change; rows are chained per subject by an HMAC under the ledger key.

    `link` = HMAC(ledger key, previous link ‖ every other field), so editing, inserting,
    deleting or reordering rows breaks the chain at the first affected event.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    profile_id = models.UUIDField()
    seq = models.PositiveBigIntegerField(help_text="Position in the subject's chain, from 1.")
    purpose = models.CharField(max_length=32, choices=PURPOSE_CHOICES)
    granted = models.BooleanField()
    notice_version = models.PositiveIntegerField()
    basis = models.CharField(max_length=24, choices=Basis.choices)
    channel = models.CharField(max_length=24, choices=Channel.choices)
    actor = models.CharField(max_length=120)
    source = models.CharField(max_length=64, blank=True, help_text="Source key for CRM/CMP changes.")
    jurisdiction = models.CharField(max_length=16, blank=True)
    language = models.CharField(max_length=16, blank=True)
    ip_hash = models.CharField(max_length=64, blank=True)
    user_agent_hash = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    evidence_note = models.CharField(
        max_length=200, blank=True, default="", db_default="",
        help_text="The stated evidence of a decision recorded for the person, not by them (an import's "
                  "--evidence: where and how the consent was collected). Never personal data.")
    link = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile_id", "seq"], name="consent_event_chain_position")]
        indexes = [
            models.Index(fields=["recorded_at", "id"], name="consent_event_time_idx"),
            models.Index(fields=["purpose", "recorded_at"], name="consent_event_purpose_idx"),
        ]

    def __str__(self) -> str:
        return f"consent event {self.id}"


class ChainHead(models.Model):
    """The last link and length of one subject's chain, MAC'd, updated with every append.

    Deleting the tail of a chain leaves a head that names a longer chain; forging the head
    needs the ledger key. The MAC also covers the subject's jurisdiction (which picks the
    legal basis of each purpose) and how many times it changed: Subject.jurisdiction must
    equal it, and checkpoints carry both, so a rolled-back jurisdiction is found too.
    """

    profile_id = models.UUIDField(primary_key=True)
    length = models.PositiveBigIntegerField(default=0)
    last_link = models.CharField(max_length=64)
    jurisdiction = models.CharField(max_length=16, default=DEFAULT_JURISDICTION)
    jurisdiction_changes = models.PositiveIntegerField(default=0)
    mac = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"chain head {self.profile_id}"


class PolicyConfigEvent(AppendOnlyModel):
    """One change of what the policy reads besides decisions: purposes' legal bases per
    jurisdiction and notice versions (material flag, lifetime). Each row holds the whole
    configuration after the change (it is small) and is chained with an HMAC under the
    ledger key, one chain for the installation; the verifier compares the newest snapshot
    with the tables the policy reads."""

    seq = models.PositiveBigIntegerField(primary_key=True, help_text="Position in the chain, from 1.")
    action = models.CharField(max_length=32)
    actor = models.CharField(max_length=120)
    recorded_at = models.DateTimeField()
    snapshot = models.TextField(help_text="Canonical JSON of every purpose basis and notice version.")
    link = models.CharField(max_length=64)

    def __str__(self) -> str:
        return f"policy configuration #{self.seq}"


class PolicyConfigHead(models.Model):
    """The configuration chain's length and last link, MAC'd (one row)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    length = models.PositiveBigIntegerField(default=0)
    last_link = models.CharField(max_length=64)
    mac = models.CharField(max_length=64)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return "policy configuration head"


class LedgerCheckpoint(models.Model):
    """A record that a checkpoint of every head was taken; the heads go to a file kept
    outside the database (`export_ledger_checkpoint`), signed with the checkpoint key
    (`mac`: checkpoints from before signing, MAC'd with the ledger key)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField()
    subjects = models.PositiveBigIntegerField()
    events = models.PositiveBigIntegerField()
    digest = models.CharField(max_length=64, help_text="SHA-256 over every head, in subject order.")
    mac = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, blank=True, help_text="Which checkpoint signing key signed it.")
    signature = models.CharField(max_length=100, blank=True, help_text="Ed25519 signature, base64.")
    path = models.CharField(max_length=500, blank=True, help_text="Where the file was written, if anywhere.")

    def __str__(self) -> str:
        return f"ledger checkpoint {self.created_at:%Y-%m-%d %H:%M}"


class VerificationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PASSED = "passed", "Intact"
    FAILED = "failed", "Broken"


class LedgerVerification(models.Model):
    """One "verify now" from the compliance console, run as a task (a large ledger takes
    minutes). The outcome is also written to the access log as an operator action."""

    id = models.BigAutoField(primary_key=True)
    status = models.CharField(max_length=8, choices=VerificationStatus.choices, default=VerificationStatus.QUEUED)
    # True while queued or running, NULL after: the unique constraint allows one at a time.
    active = models.BooleanField(null=True, default=True, editable=False)
    requested_by = models.CharField(max_length=120)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    events_total = models.PositiveBigIntegerField(default=0, help_text="Events on record when it started.")
    detail = models.JSONField(default=dict, help_text="Counts, or the first finding: ids, codes, positions.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["active"], condition=models.Q(active=True),
                                               name="one_active_ledger_verification")]

    def __str__(self) -> str:
        return f"ledger verification {self.id} ({self.status})"


class ConsentState(models.Model):
    """The current decision for one (profile, purpose), materialized with each append."""

    profile_id = models.UUIDField()
    purpose = models.CharField(max_length=32, choices=PURPOSE_CHOICES)
    granted = models.BooleanField()
    notice_version = models.PositiveIntegerField(default=1)
    expires_at = models.DateTimeField(null=True, blank=True)
    event_id = models.UUIDField(null=True, blank=True, help_text="The ledger event this state comes from.")
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile_id", "purpose"], name="consent_state_unique")]
        indexes = [models.Index(fields=["purpose", "granted", "profile_id"], name="consent_state_purpose_idx")]

    def __str__(self) -> str:
        return f"{self.purpose} for {self.profile_id}"


# --- data-subject requests ------------------------------------------------------------------


class DsrType(models.TextChoices):
    ACCESS = "access", "Access"
    PORTABILITY = "portability", "Portability"
    ERASURE = "erasure", "Erasure"
    RECTIFICATION = "rectification", "Rectification"


class DsrStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


class DataSubjectRequest(models.Model):
    """A request by a person about their data, with its deadline and outcome.

    Identifiers named in the request are resolved when it arrives and never stored (only
    their kinds). Rectification changes and the access export are sealed under the
    request's own data key (`sealed_key`, wrapped by the master key); deleting that key
    shreds them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=16, choices=DsrType.choices)
    status = models.CharField(max_length=20, choices=DsrStatus.choices, default=DsrStatus.RECEIVED)
    channel = models.CharField(max_length=24)
    requested_by = models.CharField(max_length=120)
    # Opaque (consent knows nothing of API keys): only this key reads the request over the
    # API. Empty for requests made elsewhere (preference center, console) and for those
    # filed before requests had an owner: no key reads those.
    filed_by_key = models.CharField(max_length=64, blank=True, default="",
                                    help_text="Id of the API key that filed it; only that key reads it via the API.")
    profile_id = models.UUIDField(null=True, blank=True, help_text="The person, if found.")
    identifier_kinds = models.JSONField(default=list)
    received_at = models.DateTimeField()
    due_at = models.DateTimeField()
    extended = models.BooleanField(default=False)
    completed_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(max_length=500, blank=True, help_text="Why it was rejected or failed (no personal data).")
    summary = models.JSONField(null=True, blank=True, help_text="Counts and codes; never personal values.")
    sealed_kek_id = models.CharField(max_length=32, blank=True)
    sealed_key = models.BinaryField(null=True, blank=True)
    sealed_changes = models.BinaryField(null=True, blank=True)
    sealed_result = models.BinaryField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["status", "due_at"], name="dsr_status_due_idx"),
            models.Index(fields=["profile_id", "received_at"], name="dsr_profile_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} request {self.id}"


class DsrAuditEntry(AppendOnlyModel):
    id = models.BigAutoField(primary_key=True)
    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="audit")
    at = models.DateTimeField()
    actor = models.CharField(max_length=120)
    action = models.CharField(max_length=32)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        verbose_name_plural = "DSR audit entries"

    def __str__(self) -> str:
        return f"{self.action} on {self.request_id}"


class DsrApprovalRule(models.Model):
    """A compliance officer requires an approval (by a compliance officer) for one request type."""

    type = models.CharField(max_length=16, choices=DsrType.choices, primary_key=True)
    requires_approval = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.type}: {'approval' if self.requires_approval else 'automatic'}"


# --- access log and retention ---------------------------------------------------------------


class AccessKind(models.TextChoices):
    READ = "read", "Read of decrypted personal data"
    OPERATOR_ACTION = "operator_action", "Operator action"


class AccessLog(AppendOnlyModel):
    """Who read whose decrypted data (which fields, for what), or did what as an operator."""

    id = models.BigAutoField(primary_key=True)
    at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=AccessKind.choices)
    actor = models.CharField(max_length=120)
    profile_id = models.UUIDField(null=True, blank=True)
    fields = models.JSONField(default=list, blank=True)
    purpose = models.CharField(max_length=64, help_text="Why (reads) or which action (operator actions).")
    detail = models.JSONField(default=dict, blank=True, help_text="Ids, codes and counts only.")

    class Meta:
        indexes = [
            models.Index(fields=["profile_id", "at"], name="access_log_profile_idx"),
            models.Index(fields=["actor", "at"], name="access_log_actor_idx"),
            models.Index(fields=["kind", "at"], name="access_log_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"access #{self.id}"


class RetentionKind(models.TextChoices):
    EVENTS = "events", "Interaction events"
    HELD_RECORDS = "held_records", "Held third-party records"
    IDEMPOTENCY = "idempotency", "Idempotency records"
    INGESTION_ERRORS = "ingestion_errors", "Ingestion errors"
    SERVED_NOTICES = "served_notices", "Served-notice log"
    DSR_RESULTS = "dsr_results", "Data-subject request results"


class RetentionRule(models.Model):
    """How long one kind of data is kept, for every source or for one source."""

    kind = models.CharField(max_length=24, choices=RetentionKind.choices)
    source = models.CharField(max_length=64, blank=True, help_text="Source key; empty for every source.")
    days = models.PositiveIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "source"], name="retention_rule_unique"),
            models.CheckConstraint(condition=Q(days__gte=1), name="retention_days_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.source or '(all sources)'}: {self.days} days"
