"""Exposure-aware re-ranking: one knob, `RecommenderConfig.exposure_penalty` (λ).

Models of the EASE family recommend a narrow head of the catalogue (on ml-100k ~15% of the
items reach anyone's top 10, Gini of exposure ≈ 0.95). The re-ranking lowers each
candidate's score by how often the model itself would show it:

    exposure(i) = −λ · σ · log(1 + c_i)

c_i is the number of top-`EXPOSURE_K` lists item i appears in when the fitted model ranks
(a deterministic sample of at most `EXPOSURE_SAMPLE` of) the people it was fitted on,
without the penalty; σ is the median over those people of the standard deviation of their
personal scores over the items they have not interacted with, so λ is in units of a typical
score spread whatever the data's scale. The penalty is the same for everyone (it does not
depend on the history), so the score stays linear in the history: removing an own item still
lowers a score by exactly that item's contribution. It is the inverse-propensity idea of
popularity-penalised re-ranking (Abdollahpouri et al., 2019; Steck's calibration, 2018, is
the per-person cousin), applied to exposure rather than to interactions, so what is
penalised is what the model over-serves.

The penalty is an additive part of the served score ("exposure" in `Recommendation.parts`),
so the parts still add up to the score exactly and an explanation can say it truthfully.
It reorders only items the person's history supports (a positive personal score); an item
it speaks against is left to the popularity fill-in, flagged as such, and popularity
fall-backs for people without a history are untouched. bench/rerank_tradeoff.py prints the accuracy /
coverage / Gini curve over λ next to EASE.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import sparse

from personalization.recommender.beyond_accuracy import exposure_counts

EXPOSURE_K = 10
EXPOSURE_SAMPLE = 5000


def exposure_sample(n_people: int, *, seed: int) -> np.ndarray:
    """The fitted rows whose lists estimate exposure: all, or a seeded sample, in row order."""
    if n_people <= EXPOSURE_SAMPLE:
        return np.arange(n_people)
    return np.sort(np.random.default_rng(seed).choice(n_people, EXPOSURE_SAMPLE, replace=False))


def score_spread(total: np.ndarray, seen: sparse.csr_matrix) -> np.ndarray:
    """Per row: the standard deviation of the scores of the items the person has not
    interacted with (NaN for a row with no history or nothing left)."""
    candidates = total.copy()
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    candidates[rows, seen.indices] = np.nan
    candidates[np.diff(seen.indptr) == 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanstd(candidates, axis=1)


def exposure_penalties(lists: list[list[int]], spreads: np.ndarray, n_items: int, penalty: float) -> np.ndarray:
    """λ·σ·log(1 + c_i) per item: what the "exposure" part subtracts from every person's score."""
    finite = spreads[np.isfinite(spreads)]
    sigma = float(np.median(finite)) if finite.size else 0.0
    return penalty * sigma * np.log1p(exposure_counts(lists, n_items).astype(np.float64))
