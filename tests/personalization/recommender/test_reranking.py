"""The capacity re-ranking: prices by hand on tiny examples, knob 0 is the score order, exact
parts, the same ranking for the pipeline's batch and one person's refresh, and what the knob
does on a head-heavy catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from personalization.recommender import HybridRecommender, RecommenderConfig
from personalization.recommender import beyond_accuracy as ba
from personalization.recommender.reranking import (
    EXPOSURE_SAMPLE,
    PROTECTED,
    capacity_for,
    capacity_prices,
    exposure_sample,
    person_scale,
    top_candidates,
)
from personalization.services.recommender_adapter import HybridAdapter
from tests.personalization.recommender.test_recommender import N_USERS, TOLERANCE, synthetic_shop


def test_capacity_is_a_multiple_of_the_average_exposure():
    # 100 people × 10 places over 50 items: 20 lists an item on average.
    assert capacity_for(2.0, 100, 50, k=10) == 40
    assert capacity_for(0.01, 100, 50, k=10) == 1        # never below one list
    assert capacity_for(1.5, 7, 10, k=1) == 2            # ceil(1.05)


def test_prices_by_hand_the_widest_margin_keeps_the_contested_item():
    # Everyone's favourite is item 0; one list each, capacity 1. Person 2 prefers it by 4 over
    # their next choice, persons 0 and 1 by 1: the price of item 0 becomes 1 (the second-widest
    # margin) plus the bid increment ε, so person 2 keeps it and the others move on.
    items = np.array([[0, 1, 2], [0, 1, 2], [0, 1, 2]])
    scores = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [5.0, 1.0, 1.0]])
    result = capacity_prices(items, scores, 3, capacity=1, k=1, protected=0, epsilon=0.1)
    assert result.prices[0] == pytest.approx(1.1) and result.prices[1:].tolist() == [0.0, 0.0]
    chosen = np.argmax(scores - result.prices[items], axis=1)
    assert chosen.tolist() == [1, 2, 0] and result.max_count == 1


def test_capacity_is_respected_on_a_random_example():
    rng = np.random.default_rng(3)
    scores = rng.gamma(1.0, size=(40, 12)) * np.linspace(3, 1, 12)   # a head the lists crowd into
    items = np.tile(np.arange(12), (40, 1))
    result = capacity_prices(items, scores, 12, capacity=8, k=2, protected=0)
    lists = np.argsort(-(scores - result.prices[items]), axis=1, kind="stable")[:, :2]
    assert np.bincount(lists.ravel(), minlength=12).max() <= 8 == result.capacity
    assert result.max_count <= 8


def test_protected_places_stay_the_best_by_score_and_count_against_the_capacity():
    # Two places each, the first protected. Item 0 is everyone's best: its three protected
    # places exceed the capacity of 2 already, so no price lets it into a second place; item 1
    # (everyone's second) may take at most 2 second places.
    items = np.tile(np.arange(4), (3, 1))
    scores = np.array([[4.0, 3.0, 2.0, 1.0], [4.0, 3.0, 1.0, 2.0], [4.0, 3.5, 1.0, 1.0]])
    result = capacity_prices(items, scores, 4, capacity=2, k=2, protected=1)
    assert result.prices[0] == 0.0      # never competes for a priced place
    second = [int(np.argmax(np.where(np.arange(4) == 0, -np.inf, row - result.prices))) for row in scores]
    assert second == [2, 3, 1]          # person 2 prefers item 1 by the widest margin


def test_top_candidates_and_person_scale():
    scores = np.array([[0.5, 2.0, -1.0], [0.0, 0.0, 0.0]])
    allowed = np.array([[True, True, False], [True, False, False]])
    items, values = top_candidates(scores, allowed, m=2)
    assert sorted(zip(values[0].tolist(), items[0].tolist())) == [(0.5, 0), (2.0, 1)]
    assert np.isneginf(values[1]).sum() == 1
    assert person_scale(scores, allowed).tolist() == [2.0, 1.0]   # nothing positive: 1


def test_exposure_sample_is_everyone_or_a_seeded_sample():
    assert exposure_sample(5, seed=1).tolist() == [0, 1, 2, 3, 4]
    sample = exposure_sample(EXPOSURE_SAMPLE * 2, seed=1)
    assert sample.size == EXPOSURE_SAMPLE and np.all(np.diff(sample) > 0)


@pytest.fixture(scope="module")
def shop():
    return synthetic_shop()


def fitted(shop, capacity: float) -> HybridRecommender:
    interactions, texts, categories, segments = shop
    return HybridRecommender(RecommenderConfig(content_weight=0.01, exposure_capacity=capacity, seed=5)).fit(
        interactions, texts, categories, segments)


def test_knob_zero_is_the_score_order_and_a_loose_capacity_changes_nothing(shop):
    off, loose = fitted(shop, 0.0), fitted(shop, 1000.0)
    assert off.exposure is None and off.capacity is None
    assert not loose.exposure.any()
    people = np.arange(N_USERS)
    assert off.rank(people, 6) == loose.rank(people, 6)
    for recs in off.recommend(people[:10], k=5):
        assert "exposure" not in recs[0].parts
        assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_the_exposure_part_is_exact_and_the_list_is_in_served_score_order(shop):
    model = fitted(shop, 1.0)
    assert model.fit_seconds["exposure"] >= 0 and model.exposure.max() > 0
    for person, recs in enumerate(model.recommend(np.arange(N_USERS), k=6)):
        personal = [r for r in recs if r.fallback is None]
        assert [r.score for r in personal] == sorted((r.score for r in personal), reverse=True)
        for position, rec in enumerate(personal):
            assert abs(rec.score - sum(rec.parts.values())) <= TOLERANCE
            if position < PROTECTED:
                assert rec.parts["exposure"] == 0.0      # the person's best places pay nothing
            else:
                assert rec.parts["exposure"] <= 0.0
        if personal:    # explain() gives the served score and place of a listed item
            explained = model.explain(person, personal[-1].item)
            assert explained.score == pytest.approx(personal[-1].score) and explained.rank == len(personal)


def test_production_ranks_one_persons_refresh_as_the_batch_does(shop):
    # score_rows (pipeline and real-time refresh) ranks through HybridAdapter.recommend: the
    # fitted row and the same history given afresh (the refresh) get the same priced list.
    model = fitted(shop, 1.0)
    adapter = HybridAdapter(model, [f"i{j}" for j in range(model.n_items)])
    people = list(range(20))
    batch = adapter.recommend(rows=people, segments=[None] * 20, exclude=[set()] * 20, k=6)
    history = model.interactions[people]
    history.data = np.expm1(history.data)      # raw weights: the model applies log1p itself
    refreshed = adapter.without_people().recommend(rows=[None] * 20, segments=[None] * 20,
                                                   exclude=[set()] * 20, k=6, history=history)
    assert [[s.item_id for s in recs] for recs in batch] == [[s.item_id for s in recs] for recs in refreshed]
    assert any("exposure" in s.parts for recs in batch for s in recs)


def test_the_knob_flattens_exposure_over_a_head_heavy_catalogue():
    # 300 people pick 3–11 of 80 items with Zipf(1) popularity: the unconstrained lists crowd the head.
    rng = np.random.default_rng(0)
    n_people, n_items = 300, 80
    share = 1 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for person in range(n_people):
        picks = rng.choice(n_items, size=int(rng.integers(3, 12)), replace=False, p=share / share.sum())
        rows += [person] * len(picks)
        cols += picks.tolist()
    X = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_people, n_items))
    lists = {c: HybridRecommender(RecommenderConfig(exposure_capacity=c, seed=1)).fit(X).rank(
        np.arange(n_people), 10) for c in (0.0, 1.5)}
    assert ba.coverage(lists[1.5], n_items) > 1.3 * ba.coverage(lists[0.0], n_items)
    assert ba.exposure_gini(lists[1.5], n_items) < ba.exposure_gini(lists[0.0], n_items) - 0.05
