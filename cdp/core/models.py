"""Infrastructure tables with no domain knowledge."""

from __future__ import annotations

import uuid

from django.db import models


class OutboxMessage(models.Model):
    """A promise to tell the outside world (webhooks) about a committed change.

    Written in the same transaction as the change it announces; payloads hold ids and
    purposes only, never personal data.
    """

    id = models.BigAutoField(primary_key=True)
    topic = models.CharField(max_length=64)
    payload = models.JSONField()
    # Unindexed: nothing looks rows up by it, and every index here is written twice per
    # change (insert, then the position stamp). Consumers keep their own positions
    # (OutboxConsumer), so a row records no delivery state.
    created_at = models.DateTimeField(auto_now_add=True)
    # The public id of the change (webhook `id` / `Tessera-Event-Id`, change feed `id`).
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # The change feed order. Null until stamped after the writing transaction committed
    # (cdp.core.changes): an id taken inside the transaction could commit out of order.
    # Unique where set (outbox_position_unique): an unstamped row writes no entry for it.
    position = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["id"], condition=models.Q(position__isnull=True), name="outbox_unstamped_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["position"], condition=models.Q(position__isnull=False),
                                    name="outbox_position_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.topic} #{self.id}"


class OutboxSequence(models.Model):
    """The change feed's high-water mark: the last position handed to a change.

    One row. Locking it serializes stampers, so positions are given in commit order and
    never reused, even after old changes are purged.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    last_position = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"outbox position {self.last_position}"


class OutboxConsumer(models.Model):
    """How far one internal consumer of the change feed (e.g. the webhook relay) has read.

    External readers keep their cursor themselves; internal ones keep it here.
    """

    name = models.CharField(max_length=64, primary_key=True)
    position = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"
