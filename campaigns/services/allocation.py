"""Bandit weights: Thompson sampling over the participants' outcomes so far.

Each arm's share is its posterior probability of being the best (Beta posteriors for
conversions, normal for revenue), floored at the campaign's `min_weight`, and left as it is
until every adaptive arm has `warmup` participants. With a control share the control keeps
it and the bandit splits the rest among the other arms. Withdrawn participants, and people
who no longer allow the purpose, are not in the outcomes, so they stop steering the
allocation at once. The weights are computed from exact outcomes and are not a DP release
(README, "Campaigns").
"""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.utils import timezone

from campaigns.models import Allocation, AllocationSnapshot, Campaign
from campaigns.services.outcomes import campaign_outcomes
from campaigns.stats.arms import thompson_weights


def arm_totals(outcomes, arms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Participants, conversions, mean value and value variance per arm."""
    n = np.bincount(outcomes.arm, minlength=arms).astype(float)
    conversions = np.bincount(outcomes.arm, weights=outcomes.converted, minlength=arms)
    sums = np.bincount(outcomes.arm, weights=outcomes.value, minlength=arms)
    squares = np.bincount(outcomes.arm, weights=outcomes.value ** 2, minlength=arms)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(n > 0, sums / n, 0.0)
        variances = np.where(n > 1, (squares - n * means ** 2) / np.maximum(n - 1, 1), 1.0)
    return n, conversions, means, variances


def bandit_weights(campaign: Campaign, outcomes, *, rng=None) -> list[float] | None:
    k = len(campaign.variants)
    n, conversions, means, variances = arm_totals(outcomes, k)
    first = 1 if campaign.control_share is not None else 0
    revenue = campaign.metric_kind == "revenue"
    shares = thompson_weights(conversions[first:], n[first:], minimum=campaign.min_weight, warmup=campaign.warmup,
                              rng=rng, means=means[first:] if revenue else None,
                              variances=variances[first:] if revenue else None)
    if shares is None:
        return None
    if first:
        return [campaign.control_share] + [float(s) * (1 - campaign.control_share) for s in shares]
    return [float(s) for s in shares]


def campaign_weights_recompute(*, campaign_id: int, rng=None) -> list[float] | None:
    """Recompute a running bandit's allocation; None when nothing changed (fixed allocation,
    not running, or still warming up). Reads assignments, events and consent; writes the
    campaign's weights and a snapshot."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.allocation != Allocation.BANDIT or not campaign.running(timezone.now()):
        return None
    weights = bandit_weights(campaign, campaign_outcomes(campaign), rng=rng)
    if weights is None:
        return None
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        now = timezone.now()
        campaign.weights, campaign.weights_version, campaign.weights_updated_at = (
            weights, campaign.weights_version + 1, now)
        campaign.save(update_fields=["weights", "weights_version", "weights_updated_at"])
        AllocationSnapshot.objects.create(campaign=campaign, at=now, weights=weights,
                                          version=campaign.weights_version, reason="recomputed")
    return weights


def running_bandit_ids() -> list[int]:
    now = timezone.now()
    return [c.id for c in Campaign.objects.filter(allocation=Allocation.BANDIT, stopped_at__isnull=True,
                                                  starts_at__lte=now) if c.running(now)]
