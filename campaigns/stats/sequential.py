"""Always-valid confidence intervals: the two-sided normal-mixture confidence sequence.

Howard, Ramdas, McAuliffe and Sekhon (2021), "Time-uniform, nonparametric, nonasymptotic
confidence sequences", eq. (14), in the asymptotic form of Waudby-Smith et al. (2021),
"Time-uniform central limit theory and asymptotic confidence sequences": with n observations
whose estimator has standard error se (so variance n·se² per observation),

    halfwidth = se·√n · √( 2(nρ² + 1) / (n²ρ²) · log(√(nρ² + 1) / α) )

holds for every n at once with probability ≥ 1 − α, so the intervals may be looked at after
every observation (peeking is safe). ρ tunes where the sequence is tightest: the choice
ρ² = (−2 log α + log(−2 log α + 1)) / n* makes it tightest at n = n* participants (the same
parameterisation as GrowthBook's sequential testing). Libraries were considered
(`expectation`, `confseq`, `gbstats`); the formula is a line of numpy, which keeps it vectorised.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

DEFAULT_ALPHA = 0.05
DEFAULT_TUNING = 5_000  # n*: total participants at which the sequence is tightest


def mixture_rho(alpha: float = DEFAULT_ALPHA, tuning: float = DEFAULT_TUNING) -> float:
    log_term = -2.0 * np.log(alpha)
    return float(np.sqrt((log_term + np.log(log_term + 1.0)) / tuning))


def halfwidth(std_error, n, *, alpha: float = DEFAULT_ALPHA, tuning: float = DEFAULT_TUNING):
    """Half-width of the always-valid interval for an estimate with this standard error after
    n observations in all (arrays broadcast)."""
    n = np.asarray(n, dtype=float)
    rho2 = mixture_rho(alpha, tuning) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.sqrt(2.0 * (n * rho2 + 1.0) / (n * n * rho2) * np.log(np.sqrt(n * rho2 + 1.0) / alpha))
        return np.where(n > 0, np.asarray(std_error, dtype=float) * np.sqrt(n) * factor, np.inf)


def relative_lift(mean_t, var_t, n_t, mean_c, var_c, n_c, *, alpha: float = DEFAULT_ALPHA,
                  tuning: float = DEFAULT_TUNING, sequential: bool = True):
    """Relative lift mean_t / mean_c − 1 and its interval (delta method for the ratio).

    var_* are per-observation variances. Returns (estimate, low, high) as arrays; nan where
    the control's mean is 0 or an arm is empty. `sequential=False` gives the fixed-horizon
    (z) interval, for comparison.
    """
    mean_t, var_t, n_t = (np.asarray(x, dtype=float) for x in (mean_t, var_t, n_t))
    mean_c, var_c, n_c = (np.asarray(x, dtype=float) for x in (mean_c, var_c, n_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = mean_t / mean_c - 1.0
        variance = var_t / (n_t * mean_c ** 2) + mean_t ** 2 * var_c / (n_c * mean_c ** 4)
        se = np.sqrt(variance)
        fixed_horizon = norm.ppf(1 - alpha / 2) * se
        width = halfwidth(se, n_t + n_c, alpha=alpha, tuning=tuning) if sequential else fixed_horizon
    bad = (mean_c <= 0) | (n_t < 2) | (n_c < 2) | ~np.isfinite(width)
    nan = np.full(np.shape(estimate), np.nan)
    with np.errstate(invalid="ignore"):  # inf − inf where an arm is empty: masked as nan below
        low, high = estimate - width, estimate + width
    return np.where(bad, nan, estimate), np.where(bad, nan, low), np.where(bad, nan, high)
