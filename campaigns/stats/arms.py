"""Per-arm checks and posteriors: sample-ratio mismatch, CUPED, probability of being best,
Thompson weights with a floor."""

from __future__ import annotations

import numpy as np
from scipy import stats

SRM_THRESHOLD = 0.001  # below this p-value the split is not what was asked for (GrowthBook's default)


def srm_p_value(observed, expected_shares, *, noise_variance: float = 0.0) -> float | None:
    """Chi-square goodness of fit of participants per arm against the shares they were
    assigned with (for an adaptive campaign: the allocations each was drawn under).

    Counts released with noise vary more than multinomial counts: `noise_variance` (per arm)
    is added to each cell's expected variance, so the noise alone does not raise the alarm.
    """
    observed = np.asarray(observed, dtype=float)
    shares = np.asarray(expected_shares, dtype=float)
    total = observed.sum()
    keep = shares > 0
    if total <= 0 or keep.sum() < 2:
        return None
    expected = shares[keep] / shares[keep].sum() * total
    statistic = float(np.sum((observed[keep] - expected) ** 2 / (expected + noise_variance)))
    return float(stats.chi2.sf(statistic, keep.sum() - 1))


def cuped_adjust(y, x):
    """CUPED (Deng et al., 2013): y − θ(x − mean x) with θ = cov(x, y) / var(x), pooled over
    all arms so the adjustment never favours one. Returns (adjusted, θ, variance reduction)."""
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    var_x = x.var()
    if len(y) < 2 or var_x <= 0:
        return y, 0.0, 0.0
    theta = float(np.cov(x, y, ddof=0)[0, 1] / var_x)
    adjusted = y - theta * (x - x.mean())
    var_y = y.var()
    reduction = float(1.0 - adjusted.var() / var_y) if var_y > 0 else 0.0
    return adjusted, theta, reduction


def posterior_draws(successes, trials, *, draws: int = 4000, rng=None, means=None, variances=None):
    """Posterior draws per arm, shape (draws, arms): Beta(1 + s, 1 + n − s) for conversions;
    for a continuous metric (means and variances given) the normal approximation."""
    rng = rng if rng is not None else np.random.default_rng()
    trials = np.asarray(trials, dtype=float)
    if means is None:
        successes = np.clip(np.asarray(successes, dtype=float), 0, trials)
        return rng.beta(1.0 + successes, 1.0 + np.maximum(trials - successes, 0), size=(draws, len(trials)))
    se = np.sqrt(np.asarray(variances, dtype=float) / np.maximum(trials, 1.0))
    return rng.normal(np.asarray(means, dtype=float), np.where(trials > 0, se, 1e6), size=(draws, len(trials)))


def probability_best(draws) -> np.ndarray:
    """Share of posterior draws in which each arm is the best."""
    best = np.argmax(draws, axis=1)
    return np.bincount(best, minlength=draws.shape[1]) / draws.shape[0]


def floor_weights(weights, minimum: float) -> np.ndarray:
    """Raise every weight to at least `minimum` and rescale the rest so they sum to 1 (keeps
    every arm explored, and every propensity away from 0 for off-policy estimates)."""
    weights = np.asarray(weights, dtype=float)
    k = len(weights)
    minimum = min(minimum, 1.0 / k)
    result = weights / weights.sum() if weights.sum() > 0 else np.full(k, 1.0 / k)
    for _ in range(k):
        low = result < minimum
        if not low.any():
            break
        free = 1.0 - minimum * low.sum()
        rest = result[~low].sum()
        result = np.where(low, minimum, result * (free / rest if rest > 0 else 0))
    return result / result.sum()


def thompson_weights(successes, trials, *, minimum: float, warmup: int, draws: int = 4000, rng=None,
                     means=None, variances=None) -> np.ndarray | None:
    """Thompson sampling's allocation (each arm's probability of being best), floored; None
    while any arm has fewer than `warmup` participants (the allocation then stays as it is)."""
    trials = np.asarray(trials, dtype=float)
    if len(trials) < 2 or trials.min() < warmup:
        return None
    best = probability_best(posterior_draws(successes, trials, draws=draws, rng=rng, means=means,
                                            variances=variances))
    return floor_weights(best, minimum)
