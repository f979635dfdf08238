"""The buy-till-you-die models: parameter recovery on simulated data, and their predictions."""

from __future__ import annotations

import numpy as np
import pytest

from personalization.predictive import clv

TRUE = (0.25, 30.0, 0.8, 2.5)  # r, α (days), a, b: CDNOW-like rates, in days


def simulated(variant: str, n: int = 100_000, seed: int = 11):
    T = np.random.default_rng(seed).uniform(90, 540, n)
    x, t_x, _ = clv.simulate(TRUE, T, variant=variant, seed=seed + 1)
    return x, t_x, T


# MBG/NBD's drop-out parameters are less well identified (its standard errors on a and b
# are ~7% at this size against BG/NBD's ~4%), so its bound is wider.
@pytest.mark.parametrize(("variant", "tolerance"), [(clv.BGNBD, 0.10), (clv.MBGNBD, 0.15)])
def test_the_fit_recovers_known_parameters(variant, tolerance):
    x, t_x, T = simulated(variant)

    fitted = clv.transactions_fit(x, t_x, T, variant=variant)

    for name, truth in zip(["r", "alpha", "a", "b"], TRUE):
        assert getattr(fitted, name) == pytest.approx(truth, rel=tolerance), name


def test_recovery_survives_whole_day_rounding():
    """Production feeds whole days (time stamps floored): the fit still recovers the truth."""
    x, t_x, T = simulated(clv.BGNBD)

    fitted = clv.transactions_fit(x, np.floor(t_x), np.ceil(T))

    for name, truth in zip(["r", "alpha", "a", "b"], TRUE):
        assert getattr(fitted, name) == pytest.approx(truth, rel=0.10), name


def test_gamma_gamma_recovers_its_parameters():
    rng = np.random.default_rng(5)
    p, q, v, n = 6.0, 4.0, 15.0, 20_000
    count = rng.integers(1, 12, n)
    nu = rng.gamma(q, 1.0 / v, n)  # per-customer rate of the spend gamma
    mean_spend = np.array([rng.gamma(p, 1.0 / nu[i], count[i]).mean() for i in range(n)])

    fitted = clv.spend_fit(count, mean_spend)

    assert (fitted.p, fitted.q, fitted.v) == pytest.approx((p, q, v), rel=0.10)
    # Shrinkage: one purchase of 1,000 is believed less than ten of 1,000 each.
    one, ten = clv.expected_spend(fitted, [1, 10], [1000.0, 1000.0])
    assert fitted.p * fitted.v / (fitted.q - 1) < one < ten < 1000.0


def test_expected_purchases_match_what_the_simulated_customers_then_do():
    """E[purchases in the next 90 days | history] against what the simulated customers then
    did: in total, and among the customers the model ranks highest."""
    n = 50_000
    T = np.random.default_rng(3).uniform(90, 360, n)
    x, t_x, future = clv.simulate(TRUE, T, seed=4, holdout=90)
    model = clv.TransactionModel(clv.BGNBD, *TRUE, log_likelihood=0.0, customers=n)
    predicted = clv.expected_purchases(model, x, t_x, T, 90)
    assert predicted.mean() == pytest.approx(future.mean(), rel=0.05)
    top = predicted >= np.quantile(predicted, 0.9)
    assert predicted[top].mean() == pytest.approx(future[top].mean(), rel=0.1)


def test_p_alive_falls_with_silence_and_one_time_buyers_differ_by_variant():
    model = clv.TransactionModel(clv.BGNBD, *TRUE, log_likelihood=0.0, customers=1)
    recent, lapsed = clv.p_alive(model, [5, 5], [100, 100], [110, 400])
    assert recent > 0.8 and lapsed < 0.5
    assert clv.p_alive(model, [0], [0], [400])[0] == 1.0  # BG/NBD: no repeat purchase, never dead
    modified = clv.TransactionModel(clv.MBGNBD, *TRUE, log_likelihood=0.0, customers=1)
    soon, late = clv.p_alive(modified, [0, 0], [0, 0], [10, 400])
    assert 1.0 > soon > late


def test_the_repeat_count_distribution_matches_simulated_counts():
    x, _, T = simulated(clv.MBGNBD, n=20_000)
    model = clv.TransactionModel(clv.MBGNBD, *TRUE, log_likelihood=0.0, customers=len(x))
    expected = clv.repeat_count_distribution(model, T)
    observed = np.bincount(np.minimum(x, 7).astype(int), minlength=8)
    assert expected.sum() == pytest.approx(len(x))
    assert np.abs(expected - observed).max() < 0.02 * len(x)


def test_too_little_data_is_a_fit_error():
    with pytest.raises(clv.FitError):
        clv.transactions_fit([0] * 50, [0] * 50, [30] * 50)
    with pytest.raises(clv.FitError):
        clv.spend_fit([1, 2], [10.0, 20.0])


def test_the_explanation_reads_as_a_sentence_with_its_figures():
    from personalization.services.predictions import churn_band, explanation_build

    regular = explanation_build(x=4, t_x=80, T=173, p_alive=0.64, purchases=0.8, quiet=0.52, per_purchase=31.5)
    assert regular["text"] == ("Usually buys every ~20 days; last purchase 93 days ago. 64% likely to still be a "
                               "customer; about 0.8 purchases expected in the next 90 days (52% chance of none).")
    assert regular["typical_interval_days"] == 20 and regular["orders"] == 5
    once = explanation_build(x=0, t_x=0, T=1, p_alive=0.9, purchases=0.1, quiet=0.9, per_purchase=10)
    assert once["text"].startswith("Bought once, 1 day ago.") and once["typical_interval_days"] is None
    assert [churn_band(p) for p in (0.1, 0.5, 0.79, 0.8, 1.0)] == ["low", "medium", "medium", "high", "high"]
