"""Campaigns: experiments and bandits over consented people, with logged propensities."""

from __future__ import annotations

from django.db import models


class Allocation(models.TextChoices):
    FIXED = "fixed", "Fixed (A/B/n)"
    BANDIT = "bandit", "Adaptive (Thompson sampling)"


class MetricKind(models.TextChoices):
    CONVERSION = "conversion", "Conversion"
    REVENUE = "revenue", "Revenue"


class Campaign(models.Model):
    id = models.BigAutoField(primary_key=True)
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    purpose = models.CharField(max_length=32, default="marketing",
                               help_text="Only people the consent policy allows for it take part.")
    audience = models.JSONField(null=True, blank=True, help_text='{"segment": id} or {"rule": ...}; null: everyone.')
    variants = models.JSONField(help_text='[{"key", "weight"}]; the first is the control.')
    allocation = models.CharField(max_length=8, choices=Allocation.choices, default=Allocation.FIXED)
    control_share = models.FloatField(null=True, blank=True,
                                      help_text="Fixed share of participants held out on the control.")
    metric_event = models.CharField(max_length=200)
    metric_kind = models.CharField(max_length=12, choices=MetricKind.choices, default=MetricKind.CONVERSION)
    frequency_cap = models.PositiveIntegerField(null=True, blank=True, help_text="Exposures a person may see ...")
    frequency_hours = models.PositiveIntegerField(default=24, help_text="... within this many hours.")
    min_weight = models.FloatField(default=0.01, help_text="Bandit: no arm's share falls below this.")
    warmup = models.PositiveIntegerField(default=100, help_text="Bandit: participants every arm needs before "
                                                                "the allocation adapts.")
    salt = models.CharField(max_length=32, help_text="Per-campaign hashing salt: assignments independent of "
                                                     "other campaigns'.")
    weights = models.JSONField(help_text="The current allocation, one share per variant.")
    weights_version = models.PositiveIntegerField(default=1)
    weights_updated_at = models.DateTimeField()
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key

    def running(self, now) -> bool:
        return self.stopped_at is None and self.starts_at <= now and (self.ends_at is None or now < self.ends_at)

    @property
    def variant_keys(self) -> list[str]:
        return [v["key"] for v in self.variants]


class Assignment(models.Model):
    """A participant: their arm, drawn once (sticky) with the propensity it was drawn with."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="assignments")
    profile_id = models.UUIDField()
    variant = models.PositiveSmallIntegerField(help_text="Index into the campaign's variants.")
    propensity = models.FloatField(help_text="Probability the arm had when it was drawn.")
    weights_version = models.PositiveIntegerField()
    assigned_at = models.DateTimeField()
    withdrawn_at = models.DateTimeField(null=True, blank=True,
                                        help_text="Consent for the purpose withdrawn: out of the campaign "
                                                  "(allocation and results) from then on.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "profile_id"], name="assignment_once")]
        indexes = [models.Index(fields=["profile_id"], name="assignment_profile_idx")]


class AllocationSnapshot(models.Model):
    """The allocation after each change, for the allocation-over-time chart."""

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="snapshots")
    at = models.DateTimeField()
    weights = models.JSONField()
    version = models.PositiveIntegerField()
    reason = models.CharField(max_length=32, help_text="created, recomputed, warmup")

    class Meta:
        ordering = ["at", "id"]
