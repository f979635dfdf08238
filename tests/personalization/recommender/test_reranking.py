"""The exposure re-ranking: its penalty by hand, exact parts, and what the knob does on a synthetic shop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import sparse

from personalization.recommender import HybridRecommender, RecommenderConfig
from personalization.recommender import beyond_accuracy as ba
from personalization.recommender.reranking import EXPOSURE_SAMPLE, exposure_penalties, exposure_sample, score_spread
from tests.personalization.recommender.test_recommender import N_ITEMS, N_USERS, TOLERANCE, synthetic_shop


def test_score_spread_leaves_out_the_persons_own_items_and_empty_histories():
    total = np.array([[9.0, 1.0, 3.0], [5.0, 5.0, 5.0]])
    seen = sparse.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]]))
    spreads = score_spread(total, seen)
    assert spreads[0] == pytest.approx(1.0)          # std of (1, 3)
    assert math.isnan(spreads[1])                    # no history: no spread


def test_exposure_penalties_by_hand():
    # Lists [0, 1] and [1]: counts (1, 2, 0); median spread of (1, 3, NaN) is 2; λ = 0.5:
    # 0.5 · 2 · log(1 + c) = log 2, log 3, 0.
    penalties = exposure_penalties([[0, 1], [1]], np.array([1.0, 3.0, np.nan]), 3, 0.5)
    assert penalties == pytest.approx([math.log(2), math.log(3), 0.0])
    assert exposure_penalties([[0]], np.array([np.nan]), 2, 1.0).tolist() == [0.0, 0.0]


def test_exposure_sample_is_everyone_or_a_seeded_sample():
    assert exposure_sample(5, seed=1).tolist() == [0, 1, 2, 3, 4]
    sample = exposure_sample(EXPOSURE_SAMPLE * 2, seed=1)
    assert sample.size == EXPOSURE_SAMPLE and np.all(np.diff(sample) > 0)
    assert sample.tolist() == exposure_sample(EXPOSURE_SAMPLE * 2, seed=1).tolist()


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop()


def fitted(shop, penalty: float) -> HybridRecommender:
    interactions, texts, categories, segments = shop
    return HybridRecommender(RecommenderConfig(content_weight=0.01, exposure_penalty=penalty, seed=5)).fit(
        interactions, texts, categories, segments)


def test_the_exposure_part_is_exact_and_the_same_for_everyone(shop):
    model = fitted(shop, 0.5)
    assert model.fit_seconds["exposure"] >= 0 and model.exposure.shape == (N_ITEMS,)
    for recs in model.recommend(np.arange(N_USERS), k=6):
        for rec in recs:
            assert abs(rec.score - sum(rec.parts.values())) <= TOLERANCE
            if rec.fallback is None:
                assert rec.parts["exposure"] == pytest.approx(-model.exposure[rec.item])


def test_no_penalty_means_no_exposure_part(shop):
    model = fitted(shop, 0.0)
    assert model.exposure is None
    assert all("exposure" not in rec.parts for recs in model.recommend(np.arange(10), k=5) for rec in recs)


def test_the_knob_spreads_exposure_over_a_head_heavy_catalogue():
    # 300 people pick 3–11 of 80 items with Zipf(1) popularity: the unpenalised lists crowd the head.
    rng = np.random.default_rng(0)
    n_people, n_items = 300, 80
    share = 1 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for person in range(n_people):
        picks = rng.choice(n_items, size=int(rng.integers(3, 12)), replace=False, p=share / share.sum())
        rows += [person] * len(picks)
        cols += picks.tolist()
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_people, n_items))
    lists = {penalty: HybridRecommender(RecommenderConfig(exposure_penalty=penalty, seed=1)).fit(X).rank(
        np.arange(n_people), 5) for penalty in (0.0, 0.5)}
    assert ba.coverage(lists[0.5], n_items) > 2 * ba.coverage(lists[0.0], n_items)
    assert ba.exposure_gini(lists[0.5], n_items) < ba.exposure_gini(lists[0.0], n_items) - 0.05
