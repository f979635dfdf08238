"""Campaign results: DP releases for everyone outside the operator boundary, exact analysis
for operators.

Released (charged to the `customers` lifetime budget through personalization.privacy):
participants and converters per arm as one histogram (each person is one row: their arm
and whether they converted, so one person changes one count by one), and for a revenue
metric the value per arm as clamped sums (one arm per person: parallel composition). At
most one release a day per campaign; asking again that day returns the stored one. Lift,
its always-valid interval, the SRM p-value and the probability of being best are computed
from the released values only (post-processing, no further cost). A revenue metric's
variance is not released: its interval uses the largest variance a value in [0, cap] with
that mean can have (Bhatia–Davis), which keeps it valid and wider. Every interval also
carries the release's noise (its variance added to the estimator's), and an arm whose noisy
mean is not above zero gets no lift.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from django.db.models import Q
from django.utils import timezone

from campaigns.models import AllocationSnapshot, Assignment, Campaign
from campaigns.services.allocation import arm_totals
from campaigns.services.outcomes import campaign_outcomes
from campaigns.stats import offpolicy, sequential
from campaigns.stats.arms import SRM_THRESHOLD, cuped_adjust, posterior_draws, probability_best, srm_p_value
from personalization import privacy
from personalization.dp_mechanisms import clamped_sum_measurement, histogram_measurement
from personalization.models import DpRelease

EPSILON = {"counts": 0.05, "value": 0.1}
# One participant's value counts at most this much in a release: the noise on an arm's mean is
# about VALUE_UPPER / (ε · participants), so 100.00 at ε = 0.1 is ±0.1 a person at 10,000 people.
VALUE_UPPER_CENTS = 100_00


def _day_key(campaign: Campaign, what: str, day: str) -> str:
    return f"campaign:{campaign.id}:{what}:{day}"


def campaign_results_release(*, campaign_id: int, day: str | None = None) -> list[DpRelease]:
    """Today's DP release of the campaign's arm figures (made once; BudgetExceeded when the
    budget cannot pay, storing nothing). Reads outcomes (exact, in memory only)."""
    campaign = Campaign.objects.get(pk=campaign_id)
    day = day or timezone.now().date().isoformat()
    outcomes = campaign_outcomes(campaign)
    k = len(campaign.variants)
    rows = [int(a) * 2 + int(c) for a, c in zip(outcomes.arm, outcomes.converted, strict=True)]
    categories = list(range(2 * k))
    measurement, scale = histogram_measurement(categories, d_in=1, epsilon=EPSILON["counts"])
    releases = [privacy.dp_release(privacy.Query(
        query_key=_day_key(campaign, "counts", day), statistic="campaign_counts",
        parts=[privacy.Measured(measurement, rows)], d_in=1,
        mechanism="discrete Laplace on counts by arm and conversion (OpenDP count_by_categories + laplace)",
        noise_scale=scale, error_bound_95=privacy.accuracy(scale),
        values=lambda outputs: {"counts": [max(0, int(v)) for v in outputs[0]]},
        details={"campaign": campaign.key, "categories": "arm × (not converted, converted)"}))]
    if campaign.metric_kind == "revenue":
        cents = [int(round(v * 100)) for v in outcomes.value]
        by_arm = [[c for c, a in zip(cents, outcomes.arm, strict=True) if a == arm] for arm in range(k)]
        measurement, scale = clamped_sum_measurement(epsilon=EPSILON["value"], upper=VALUE_UPPER_CENTS)
        releases.append(privacy.dp_release(privacy.Query(
            query_key=_day_key(campaign, "value", day), statistic="campaign_value",
            parts=[privacy.Measured(measurement, part) for part in by_arm], d_in=1, parallel=True,
            clamp=(0.0, VALUE_UPPER_CENTS / 100),
            mechanism="discrete Laplace on clamped sum of value per arm (OpenDP clamp + sum + laplace)",
            noise_scale=scale / 100, error_bound_95=privacy.accuracy(scale) / 100,
            values=lambda outputs: {"sums": [round(max(0, v) / 100, 2) for v in outputs]},
            details={"campaign": campaign.key})))
    return releases


def _latest(campaign: Campaign, what: str) -> DpRelease | None:
    return (DpRelease.objects.filter(dataset=privacy.DATASET, query_key__startswith=f"campaign:{campaign.id}:{what}:")
            .order_by("-created_at", "-id").first())


def _noise_variance(release: DpRelease | None, n, *, parts: int = 1):
    """The release's noise as a per-participant variance: Laplace noise of scale b on a total
    (here the sum of `parts` noisy counts) adds 2·parts·b² / n² to the mean's variance, which is
    n times that per participant."""
    if release is None or not release.noise_scale:
        return 0.0
    return 2.0 * parts * release.noise_scale ** 2 / np.maximum(n, 1)


def expected_shares(campaign: Campaign) -> np.ndarray:
    """Each arm's expected share of participants under the allocations they were drawn with."""
    weights = {s.version: s.weights for s in AllocationSnapshot.objects.filter(campaign=campaign)}
    counts = Assignment.objects.filter(campaign=campaign).values_list("weights_version", flat=True)
    total = np.zeros(len(campaign.variants))
    for version in counts.iterator():
        total += np.asarray(weights.get(version, campaign.weights))
    return total if total.sum() > 0 else np.asarray(campaign.weights)


def campaign_results(*, campaign: Campaign) -> dict:
    """The contract's results body, from the latest release (empty arms before any)."""
    counts_release = _latest(campaign, "counts")
    k = len(campaign.variants)
    body = {"campaign": campaign.key, "arms": [], "srm_p_value": None, "srm_warning": False, "always_valid": True,
            "updated_at": None, "privacy": None}
    if counts_release is None:
        return body
    counts = np.asarray(counts_release.values["counts"], dtype=float).reshape(k, 2)
    n = counts.sum(axis=1)
    conversions = counts[:, 1]
    releases = [counts_release]
    if campaign.metric_kind == "revenue":
        value_release = _latest(campaign, "value")
        sums = np.asarray(value_release.values["sums"]) if value_release else np.zeros(k)
        releases += [value_release] if value_release else []
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(n > 0, sums / np.maximum(n, 1), 0.0)
        cap = VALUE_UPPER_CENTS / 100
        variances = np.clip(means * (cap - means), 1e-12, None) + _noise_variance(value_release, n)
        draws = posterior_draws(None, n, means=means, variances=variances, rng=np.random.default_rng(counts_release.id))
    else:
        sums = conversions
        means = np.where(n > 0, np.minimum(conversions, n) / np.maximum(n, 1), 0.0)
        variances = means * (1 - means) + _noise_variance(counts_release, n, parts=2)
        draws = posterior_draws(np.minimum(conversions, n), n, rng=np.random.default_rng(counts_release.id))
    estimate, low, high = sequential.relative_lift(means, variances, n, means[0], variances[0], n[0])
    best = probability_best(draws)
    # An arm's released count is the sum of two noisy counts (converted or not).
    srm = srm_p_value(n, expected_shares(campaign), noise_variance=4.0 * (counts_release.noise_scale or 0) ** 2)
    for arm, variant in enumerate(campaign.variants):
        lift = None if arm == 0 or not np.isfinite(estimate[arm]) or means[arm] <= 0 else {
            "estimate": round(float(estimate[arm]), 4), "ci": [round(float(low[arm]), 4), round(float(high[arm]), 4)]}
        body["arms"].append({"variant": variant["key"], "participants": int(n[arm]),
                             "conversions": int(min(conversions[arm], n[arm])), "value": round(float(sums[arm]), 2),
                             "weight": round(float(campaign.weights[arm]), 4), "lift": lift,
                             "probability_best": round(float(best[arm]), 4)})
    body.update({
        "srm_p_value": None if srm is None else round(srm, 6), "srm_warning": srm is not None and srm < SRM_THRESHOLD,
        "updated_at": counts_release.created_at,
        "privacy": {"epsilon": round(sum(r.epsilon for r in releases), 6), "mechanism": counts_release.mechanism,
                    "counts_error_bound_95": round(counts_release.error_bound_95, 2)},
    })
    return body


def campaign_analysis(*, campaign: Campaign) -> dict:
    """Exact figures for operators with database access (inside the boundary): per-arm
    totals, lift with always-valid intervals with and without CUPED, SRM, probability of
    being best, and off-policy estimates of candidate allocations from the logged
    propensities. Never served by the API or shown on /ops/."""
    outcomes = campaign_outcomes(campaign)
    k = len(campaign.variants)
    n, conversions, means, variances = arm_totals(outcomes, k)
    adjusted, theta, reduction = cuped_adjust(outcomes.value, outcomes.covariate)
    adj_means = np.array([adjusted[outcomes.arm == a].mean() if n[a] else 0.0 for a in range(k)])
    adj_vars = np.array([adjusted[outcomes.arm == a].var(ddof=1) if n[a] > 1 else 1.0 for a in range(k)])
    raw = sequential.relative_lift(means, variances, n, means[0], variances[0], n[0])
    cuped = sequential.relative_lift(adj_means, adj_vars, n, adj_means[0], adj_vars[0], n[0])
    best = probability_best(posterior_draws(conversions, n, means=None if campaign.metric_kind == "conversion"
                                            else means, variances=variances, rng=np.random.default_rng(0)))
    policies = {f"only:{v['key']}": np.eye(k)[i] for i, v in enumerate(campaign.variants)}
    policies.update({"uniform": np.full(k, 1.0 / k), "current": np.asarray(campaign.weights)})

    def interval(triple, arm):
        return [None if not np.isfinite(x[arm]) else round(float(x[arm]), 4) for x in triple]

    return {
        "campaign": campaign.key, "participants": int(len(outcomes)), "exposed": int(outcomes.exposed.sum()),
        "arms": [{"variant": v["key"], "participants": int(n[i]), "conversions": int(conversions[i]),
                  "mean": round(float(means[i]), 6), "lift": interval(raw, i), "lift_cuped": interval(cuped, i),
                  "probability_best": round(float(best[i]), 4)} for i, v in enumerate(campaign.variants)],
        "cuped": {"theta": round(theta, 6), "variance_reduction": round(reduction, 4)},
        "srm_p_value": srm_p_value(n, expected_shares(campaign)),
        "off_policy": {name: offpolicy.estimates(outcomes.arm, outcomes.propensity, outcomes.reward, pi)
                       for name, pi in policies.items()},
        "note": "lift: [estimate, low, high] with always-valid 95% intervals",
    }


def campaigns_to_release() -> list[int]:
    """Campaigns running now, or stopped or ended within the last day (their final figures)."""
    since = timezone.now() - timedelta(days=1)
    return list(Campaign.objects.filter(starts_at__lte=timezone.now()).filter(
        Q(stopped_at__isnull=True) | Q(stopped_at__gte=since)).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gte=since)).values_list("id", flat=True))
