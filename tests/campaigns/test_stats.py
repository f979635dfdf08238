"""The statistics functions, against simulation and closed forms."""

from __future__ import annotations

import numpy as np

from campaigns.stats import offpolicy, sequential
from campaigns.stats.arms import cuped_adjust, floor_weights, probability_best, srm_p_value, thompson_weights


def test_confidence_sequence_is_wider_than_fixed_horizon_and_shrinks():
    z = sequential.relative_lift(0.11, 0.11 * 0.89, 5000, 0.1, 0.09, 5000, sequential=False)
    cs = sequential.relative_lift(0.11, 0.11 * 0.89, 5000, 0.1, 0.09, 5000)
    assert cs[1] < z[1] < z[2] < cs[2]
    widths = [np.subtract(*reversed(sequential.relative_lift(0.1, 0.09, n, 0.1, 0.09, n)[1:]))
              for n in (100, 1000, 10000)]
    assert widths[0] > widths[1] > widths[2]


def test_a_a_peeking_keeps_the_error_rate_and_the_z_interval_does_not():
    rng = np.random.default_rng(3)
    experiments, days, per_day, p = 2000, 20, 100, 0.1
    conv = rng.binomial(per_day, p, size=(2, experiments, days)).cumsum(axis=2)
    n = per_day * np.arange(1, days + 1)
    rejected = {}
    for name, seq in (("cs", True), ("z", False)):
        mean = conv / n
        est, low, high = sequential.relative_lift(mean[1], mean[1] * (1 - mean[1]), n, mean[0],
                                                  mean[0] * (1 - mean[0]), n, sequential=seq)
        rejected[name] = np.mean(np.any((low > 0) | (high < 0), axis=1))
    assert rejected["cs"] <= 0.05
    assert rejected["z"] > 0.15  # peeking at a fixed-horizon interval: the problem solved


def test_srm_flags_a_skewed_split():
    assert srm_p_value([5000, 5000], [0.5, 0.5]) > 0.5
    assert srm_p_value([5000, 4600], [0.5, 0.5]) < 0.001
    assert srm_p_value([900, 100], [0.9, 0.1]) > 0.5
    # Counts with Laplace noise (scale 20 a count, two counts an arm) do not raise the alarm by themselves.
    rng = np.random.default_rng(5)
    noisy = rng.multinomial(2000, [0.5, 0.5], size=2000) + rng.laplace(0, 20, (2000, 2, 2)).sum(axis=2)
    alarms = np.mean([srm_p_value(row, [0.5, 0.5], noise_variance=4 * 20 ** 2) < 0.05 for row in noisy])
    plain = np.mean([srm_p_value(row, [0.5, 0.5]) < 0.05 for row in noisy])
    assert alarms <= 0.07 < plain


def test_cuped_reduces_variance_with_a_correlated_covariate():
    rng = np.random.default_rng(1)
    x = rng.normal(10, 3, 5000)
    y = 0.8 * x + rng.normal(0, 1, 5000)
    adjusted, theta, reduction = cuped_adjust(y, x)
    assert abs(theta - 0.8) < 0.05 and reduction > 0.8
    assert abs(adjusted.mean() - y.mean()) < 1e-9  # unbiased: the mean is kept


def test_thompson_floor_and_warmup():
    assert thompson_weights([10, 50], [99, 500], minimum=0.05, warmup=100) is None
    weights = thompson_weights([10, 80], [500, 500], minimum=0.05, warmup=100, rng=np.random.default_rng(0))
    assert weights[0] == 0.05 and abs(weights.sum() - 1) < 1e-12
    assert np.allclose(floor_weights([0.0, 0.0, 1.0], 0.1), [0.1, 0.1, 0.8])
    best = probability_best(np.array([[1, 2], [3, 0], [0, 5], [1, 4]]))
    assert list(best) == [0.25, 0.75]


def test_off_policy_estimators_recover_each_arms_value():
    rng = np.random.default_rng(2)
    n = 20000
    prop = np.array([0.7, 0.3])
    arms = rng.choice(2, n, p=prop)
    rewards = rng.binomial(1, np.where(arms == 1, 0.2, 0.1))
    for arm, truth in ((0, 0.1), (1, 0.2)):
        result = offpolicy.estimates(arms, prop[arms], rewards, np.eye(2)[arm])
        for name in ("ips", "snips", "dr"):
            assert abs(result[name] - truth) < 0.015, (name, result)
