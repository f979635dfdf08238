"""Consent state per (subject, purpose).

Subjects are pseudonymous profile ids (plain UUIDs, no foreign key: consent depends on
no other app of ours, and the record must outlive an erased profile).
"""

from __future__ import annotations

from django.db import models

from consent.purposes import PURPOSES


class ConsentState(models.Model):
    """The current decision for one (profile, purpose), kept for fast policy checks."""

    profile_id = models.UUIDField()
    purpose = models.CharField(max_length=32, choices=[(p, p) for p in PURPOSES])
    granted = models.BooleanField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["profile_id", "purpose"], name="consent_state_unique")]
        indexes = [models.Index(fields=["purpose", "granted", "profile_id"], name="consent_state_purpose_idx")]

    def __str__(self) -> str:
        return f"{self.purpose} for {self.profile_id}"
