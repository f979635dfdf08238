"""Subscriptions, deliveries and the per-attempt delivery log.

Nothing here holds personal data: deliveries point at outbox rows (ids and purposes
only), and attempts record status codes, error classes and durations, never bodies.
"""

from __future__ import annotations

import uuid

from django.db import models


class WebhookSubscription(models.Model):
    """An integrator's endpoint and the event types it wants.

    The signing secret is stored only encrypted under the subscription's own data key,
    with the subscription id and field name as associated data; deleting the
    subscription deletes the key, which shreds the secrets.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    url = models.CharField(max_length=2048)
    events = models.JSONField(help_text="Event types delivered, e.g. [\"consent.changed\"].")
    data_key = models.OneToOneField("cdp.DataKey", null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    secret_cipher = models.BinaryField()
    previous_secret_cipher = models.BinaryField(null=True, blank=True)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True,
                                                      help_text="Until then, the previous secret signs too.")
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    # The API key that created it, the only key that lists, rotates or deletes it (and the
    # source that key was bound to then). None for subscriptions made before they had
    # owners: only unbound keys (the operator's) manage those. PROTECT: a key is revoked,
    # not deleted, while it owns live or past subscriptions.
    owner_key = models.ForeignKey("api.ApiKey", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                  help_text="The API key that created it; only that key manages it.")
    owner_source = models.ForeignKey("cdp.Source", null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="+", help_text="The source its key was bound to, if any.")
    batch_size = models.PositiveSmallIntegerField(
        default=1, help_text="Changes per POST: 1 sends each change alone (the default); more sends "
                             "{\"events\": [...]} with up to this many.")
    created_at = models.DateTimeField(auto_now_add=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # One live subscription per URL, so one receiver never gets an event twice.
            models.UniqueConstraint(fields=["url"], condition=models.Q(deleted_at__isnull=True),
                                    name="webhook_url_live_unique"),
        ]

    def __str__(self) -> str:
        return f"webhook {self.id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (attempts exhausted)"
    CANCELLED = "cancelled", "Cancelled (subscription deleted)"


class WebhookDelivery(models.Model):
    """One event for one subscription. At most one exists per pair, and once it has
    succeeded it is never sent again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    message = models.ForeignKey("core.OutboxMessage", on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="Due time; while an attempt runs, the end of its lease.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="A task is queued and has not run yet.")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subscription", "message"], name="webhook_delivery_once"),
        ]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(status="pending"),
                         name="webhook_delivery_due_idx"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.id} ({self.status})"


class AttemptOutcome(models.TextChoices):
    SENDING = "sending", "Sending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    LOST = "lost", "Lost (the worker stopped mid-attempt)"


class WebhookAttempt(models.Model):
    """The delivery log: one row per HTTP attempt."""

    id = models.BigAutoField(primary_key=True)
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=10, choices=AttemptOutcome.choices, default=AttemptOutcome.SENDING)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=64, blank=True, help_text="Error class, e.g. ConnectionRefusedError.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="webhook_attempt_number_unique"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"
