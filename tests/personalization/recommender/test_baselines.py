"""The tuned baselines on matrices small enough to check by hand, the shared search and the paired CI."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from personalization.recommender.baselines import (
    BASELINES,
    ease_factors,
    ease_scores,
    ease_weights,
    rank_scores,
    rp3beta_weights,
)
from personalization.recommender.report import best_baseline, paired_difference
from personalization.recommender.search import coordinate_search, validation_split

# Three people, two items: person 0 has both, person 1 item 0, person 2 item 1.
TINY = sparse.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0]]))


def test_ease_by_hand():
    # XᵀX = [[2, 1], [1, 2]]; λ = 1: P = (XᵀX + I)⁻¹ = [[3, -1], [-1, 3]] / 8,
    # B = I − P·diag(1/diag P): B[0, 1] = −P[0, 1] / P[1, 1] = (1/8) / (3/8) = 1/3, and B[1, 0] the same.
    B = ease_weights(TINY, 1.0)
    assert pytest.approx(np.array([[0.0, 1 / 3], [1 / 3, 0.0]])) == B
    scores = ease_scores(ease_factors(TINY), 1.0, [0, 1, 2])
    assert scores == pytest.approx(np.array([[1 / 3, 1 / 3], [0.0, 1 / 3], [1 / 3, 0.0]]))


@pytest.mark.parametrize("shape", [(40, 12), (8, 30)])   # more people than items, and fewer
def test_ease_through_the_decomposition_is_the_definition(shape):
    X = sparse.random(*shape, density=0.3, random_state=1, format="csr")
    factors = ease_factors(X)
    for l2 in (0.5, 10.0, 300.0):
        expected = (X > 0).astype(float).toarray() @ ease_weights(X, l2)
        assert ease_scores(factors, l2, range(shape[0])) == pytest.approx(expected, abs=1e-8)


def test_rp3beta_by_hand():
    X = sparse.csr_matrix(np.array([[1.0, 1.0], [1.0, 0.0]]))
    # P_ui = [[.5, .5], [1, 0]] (people's degrees 2, 1), P_iu = [[.5, .5], [1, 0]] (items' 2, 1);
    # W = P_iu·P_ui = [[.75, .25], [.5, .5]], diagonal zeroed: W[0, 1] = .25, W[1, 0] = .5.
    W = rp3beta_weights(X, alpha=1.0, beta=0.0, neighbours=5).toarray()
    assert pytest.approx(np.array([[0.0, 0.25], [0.5, 0.0]])) == W
    # β = 1 divides column i by item i's popularity (2 for item 0): W[1, 0] = .5 / 2.
    W = rp3beta_weights(X, alpha=1.0, beta=1.0, neighbours=5).toarray()
    assert pytest.approx(np.array([[0.0, 0.25], [0.25, 0.0]])) == W
    # α = 2 squares every transition probability first: W[0, 1] = .25·.25 + 0 = 1/16.
    W = rp3beta_weights(X, alpha=2.0, beta=0.0, neighbours=5).toarray()
    assert W[0, 1] == pytest.approx(1 / 16) and W[1, 0] == pytest.approx(0.25)


def test_rp3beta_keeps_the_largest_weights_per_row():
    X = sparse.random(30, 10, density=0.5, random_state=2, format="csr")
    full = rp3beta_weights(X, alpha=0.8, beta=0.3, neighbours=9).toarray()
    kept = rp3beta_weights(X, alpha=0.8, beta=0.3, neighbours=3).toarray()
    for j in range(10):
        top = np.sort(full[j])[-3:]
        assert np.sort(kept[j][kept[j] != 0]) == pytest.approx(top[top != 0])


def test_baselines_never_rank_the_history_or_what_was_consumed():
    X = sparse.random(30, 12, density=0.3, random_state=3, format="csr")
    consumed = sparse.csr_matrix(([1.0, 1.0], ([0, 1], [5, 6])), shape=X.shape)
    for baseline in BASELINES.values():
        lists = baseline.recommend(X, baseline.start, [0, 1], 12, seed=1, consumed=consumed)
        for user, items in zip([0, 1], lists):
            own = set(X[user].indices) | set(consumed[user].indices)
            assert set(items) == set(range(12)) - own, baseline.name


def test_rank_scores_orders_by_score_then_index():
    scores = np.array([[0.5, 0.9, 0.9, 0.1]])
    history = sparse.csr_matrix((1, 4))
    assert rank_scores(scores, history, None, [0], 3) == [[1, 2, 0]]


def test_coordinate_search_stops_at_the_budget_and_keeps_the_best():
    calls = []

    def score(params):
        calls.append(params)
        return -(params["a"] - 3) ** 2 - (params["b"] - 1) ** 2

    result = coordinate_search({"a": 0, "b": 0}, {"a": (1, 2, 3, 4), "b": (1, 2)}, score, budget=100)
    assert result.params == {"a": 3, "b": 1} and result.score == 0 and result.start_score == -10
    assert len(calls) == len({tuple(sorted(c.items())) for c in calls})   # each configuration once
    limited = coordinate_search({"a": 0, "b": 0}, {"a": (1, 2, 3, 4), "b": (1, 2)}, score, budget=3)
    assert len(limited.trials) == 3 and limited.params == {"a": 2, "b": 0}


def test_the_validation_split_is_carved_from_training_data_only():
    X = sparse.random(50, 20, density=0.3, random_state=4, format="csr")
    consumed = X.copy()
    validation = validation_split(X, seed=9, consumed=consumed)
    assert np.array_equal((validation.train + validation.test).toarray() > 0, X.toarray() > 0)
    # What the validation split holds out is scored, so it is not "consumed" there.
    assert validation.consumed.multiply(validation.test).nnz == 0
    assert set(validation.users) == set(np.flatnonzero(np.diff(validation.test.indptr)))


def test_paired_difference_by_hand():
    # Differences 0.1, 0.2, 0.3: mean 0.2, sample sd 0.1, t(0.975, 2) = 4.302653.
    result = paired_difference([0.5, 0.6, 0.7], [0.4, 0.4, 0.4])
    half = 4.302653 * 0.1 / np.sqrt(3)
    assert result["mean_diff"] == pytest.approx(0.2)
    assert result["ci95"] == pytest.approx([0.2 - half, 0.2 + half], abs=1e-6)
    assert paired_difference([0.5], [0.4]) == {"mean_diff": pytest.approx(0.1), "ci95": [None, None]}
    with pytest.raises(ValueError, match="same"):
        paired_difference([0.5, 0.6], [0.4])


def test_the_best_baseline_is_chosen_by_mean_ndcg():
    models = {name: {"mean": {"ndcg@10": value}} for name, value in
              (("tessera", 0.9), ("ease", 0.3), ("als", 0.32), ("popularity", 0.1))}
    assert best_baseline(models, 10) == "als"


def test_a_validation_split_can_hold_out_only_the_relevant_interactions():
    positives = sparse.random(40, 15, density=0.3, random_state=5, format="csr")
    positives.data[:] = 3.0
    light = sparse.random(40, 15, density=0.2, random_state=6, format="csr")
    light.data[:] = 0.5
    light = light - light.multiply(positives > 0)      # lighter history on other items
    mixed = sparse.csr_matrix(positives + light)
    plain = validation_split(positives, seed=2)
    relevant = validation_split(mixed, seed=2, relevant_min=2.0)
    # The same positives are held out; the light interactions all stay in training.
    assert (plain.test != relevant.test).nnz == 0
    assert set(relevant.train.data.tolist()) <= {3.0, 0.5}
    assert np.array_equal(relevant.train.toarray() == 0.5, light.toarray() == 0.5)
    # Nothing weighs enough: every interaction counts.
    assert validation_split(light, seed=2, relevant_min=2.0).test.nnz > 0


def test_rp3beta_s_search_shares_one_walk_per_alpha_and_scores_as_a_fresh_fit():
    X = sparse.random(40, 30, density=0.2, format="csr", random_state=3)
    cache: dict = {}
    model = BASELINES["rp3beta"]
    for params in ({"alpha": 0.8, "beta": 0.3, "neighbours": 5}, {"alpha": 0.8, "beta": 0.1, "neighbours": 10},
                   {"alpha": 0.4, "beta": 0.1, "neighbours": 10}):
        shared = model.fit(X, params, seed=1, cache=cache)(range(40))
        fresh = model.fit(X, params, seed=1, cache={})(range(40))
        assert np.array_equal(shared, fresh)
        assert cache["alpha"] == params["alpha"]
