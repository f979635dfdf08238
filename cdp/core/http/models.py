"""API keys and idempotency records of the integrator API.

Neither table holds personal data: a key is kept only as a SHA-256 of its secret, and an
idempotency record keeps a keyed hash of the request and a response made of ids,
statuses and codes.
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from cdp.core.http.scopes import SCOPES


class ApiKey(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    # The public part of `tsk_<prefix>_<secret>`: finds the row and identifies the key in lists.
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    source = models.ForeignKey("cdp.Source", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                               help_text="When set, the key can write only as this source.")
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} (tsk_{self.prefix})"

    def clean(self) -> None:
        unknown = [s for s in self.scopes or [] if s not in SCOPES]
        if not isinstance(self.scopes, list) or unknown:
            raise ValidationError({"scopes": "Unknown scope; use the scopes listed in the API documentation."})

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class IdempotencyStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one API key on one endpoint, kept 24 hours.

    Written in the same transaction as the request's effects: a crashed request leaves
    no record behind, so its key can simply be sent again.
    """

    id = models.BigAutoField(primary_key=True)
    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    endpoint = models.CharField(max_length=200, help_text="Method and route pattern.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64, help_text="Keyed hash of path, preconditions and body.")
    status = models.CharField(max_length=16, choices=IdempotencyStatus.choices,
                              default=IdempotencyStatus.IN_PROGRESS)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True, help_text="Ids, statuses and codes only.")
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "endpoint", "key"], name="idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return f"idempotency record #{self.id}"
