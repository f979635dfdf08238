"""Infrastructure tables with no domain knowledge."""

from __future__ import annotations

from django.db import models


class OutboxMessage(models.Model):
    """A promise to tell the outside world (webhooks) about a committed change.

    Written in the same transaction as the change it announces; payloads hold ids and
    purposes only, never personal data.
    """

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=64)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["dispatched_at", "id"], name="outbox_pending_idx")]

    def __str__(self) -> str:
        return f"{self.topic} #{self.id}"
