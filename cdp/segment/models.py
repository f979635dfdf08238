"""The ingestion-error log: Segment messages Tessera could not store, kept for operators.

A malformed message may still hold personal data (an email in its traits), so the raw
message is stored only as a ciphertext under the row's own data key: purging a row or
shredding its key makes it unreadable, with no other row affected. Blind indexes of the
identifiers it named let an erasure find the rows of one person.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from cdp.models import DataKey, Source


class IngestionError(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="+")
    received_at = models.DateTimeField(default=timezone.now)
    # One of the Segment types, or "unknown": a type as sent is free text and stays out.
    message_type = models.CharField(max_length=16)
    codes = models.JSONField(default=list, help_text="Stable error codes; never values.")
    data_key = models.OneToOneField(DataKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    message = models.BinaryField(help_text="The message as sent, encrypted under data_key.")

    class Meta:
        indexes = [
            models.Index(fields=["received_at"], name="ingestion_error_time_idx"),
            models.Index(fields=["source", "received_at"], name="ingestion_error_source_idx"),
        ]

    def __str__(self) -> str:
        return f"ingestion error {self.id}"


class IngestionErrorIdentifier(models.Model):
    """Blind index of one identifier a failed message named, so erasure can find it."""

    error = models.ForeignKey(IngestionError, on_delete=models.CASCADE, related_name="identifiers")
    kind = models.CharField(max_length=16)
    namespace = models.CharField(max_length=64, blank=True)
    blind_index = models.CharField(max_length=64)

    class Meta:
        indexes = [models.Index(fields=["blind_index", "kind", "namespace"], name="ingestion_error_ident_idx")]
