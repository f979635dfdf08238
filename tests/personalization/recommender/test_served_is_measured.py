"""Production serves what the evaluation measures: one fitting function, one exclusion rule."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from scipy import sparse

from personalization.recommender.evaluation import STEPS_PER_SEED, RatingsData, consumed_at_serving, evaluate
from personalization.recommender.exclusion import candidate_mask
from personalization.recommender.protocol import split_per_user
from personalization.recommender.tuning import fit_tuned
from personalization.services.recommender_adapter import HybridAdapter

USERS, ITEMS = 60, 24


def shop(seed: int = 5):
    """Two taste groups over two categories, with a little noise."""
    rng = np.random.default_rng(seed)
    dense = np.zeros((USERS, ITEMS))
    for u in range(USERS):
        liked = np.arange(u % 2, ITEMS, 2)
        dense[u, rng.choice(liked, size=int(rng.integers(3, 8)), replace=False)] = 1.0
        dense[u, rng.integers(0, ITEMS)] = 1.0
    texts = [f"Item {i} {'garden' if i % 2 else 'kitchen'}" for i in range(ITEMS)]
    categories = ["Garden" if i % 2 else "Kitchen" for i in range(ITEMS)]
    return sparse.csr_matrix(dense), texts, categories


def training_data(X, texts, categories):
    """What the pipeline's `training_data_load` hands the adapter, without the database."""
    return SimpleNamespace(interactions=X, item_texts=texts, item_attributes=[{"category": c} for c in categories],
                           user_segments=np.full(X.shape[0], -1), item_ids=[f"sku-{i}" for i in range(X.shape[1])])


def test_the_pipeline_fits_exactly_what_the_evaluation_reports_as_tessera():
    X, texts, categories = shop()
    production = HybridAdapter.fit(training_data(X, texts, categories), seed=42)
    measured, tuning = fit_tuned(X, texts, categories, np.full(USERS, -1), seed=42)
    assert production.model.config == tuning.config
    assert production.model_version == measured.model_version
    assert production.tuning["config"] == tuning.config.to_dict() and production.tuning["trials"] == len(tuning.trials)
    rows = list(range(USERS))
    assert production.model.rank(rows, 10) == measured.rank(rows, 10)


def test_the_evaluation_serves_tessera_through_fit_tuned():
    X, texts, categories = shop(seed=6)
    data = RatingsData(name="tiny", positives=X, rated=X, user_ids=[str(u) for u in range(USERS)],
                       item_ids=[str(i) for i in range(ITEMS)], item_titles=texts, item_texts=texts,
                       item_categories=categories, item_genres=[[c] for c in categories])
    document = evaluate(data, seeds=[3], k=5, budget=3)
    split = split_per_user(X, seed=3)
    model, _ = fit_tuned(split.train, texts, categories, None, seed=3, k=5, budget=3,
                         consumed=consumed_at_serving(data, split, 3))
    assert document["models"]["tessera"]["per_seed"][0]["model_version"] == model.model_version


def test_one_exclusion_rule_for_production_and_evaluation():
    X, texts, categories = shop(seed=7)
    adapter = HybridAdapter.fit(training_data(X, texts, categories), seed=1, max_seconds=0)
    person, bought = 4, {"sku-1", "sku-3", "sku-20"}
    expected = candidate_mask(ITEMS, X[person].indices, [int(s.split("-")[1]) for s in bought])
    # Production: the adapter, with the person's purchases named by item id.
    [served] = adapter.recommend(rows=[person], segments=[None], exclude=[bought], k=ITEMS)
    assert {s.item_id for s in served} == {f"sku-{i}" for i in np.flatnonzero(expected)}
    # The evaluation: the same model, the consumed items as a matrix row.
    consumed = sparse.csr_matrix(([1.0] * 3, ([0, 0, 0], [1, 3, 20])), shape=(1, ITEMS))
    assert set(adapter.model.rank([person], ITEMS, exclude=consumed)[0]) == set(np.flatnonzero(expected))


def test_the_evaluation_gives_tessera_the_ratings_weighted_as_production_weighs_them():
    from personalization.recommender.evaluation import production_input
    from personalization.recommender.feedback import rating_weight

    rated = sparse.csr_matrix(np.array([[5.0, 1.0, 3.0, 4.0]]))
    consumed = sparse.csr_matrix(np.array([[1.0, 1.0, 0.0, 1.0]]))   # item 2 is held out
    data = SimpleNamespace(rated=rated)
    assert production_input(data, consumed).toarray().tolist() == [[3.0, 0.5, 0.0, 2.0]]
    assert rating_weight(np.array([1.0, 2.0, 2.5, 3.0, 5.0])).tolist() == [0.5, 0.5, 0.5, 1.0, 3.0]


def _without_timings(document: dict) -> dict:
    document = {**document}
    document.pop("seconds")
    for group in (document["models"], document["ablation"], document["same_input"]):
        for summary in group.values():
            for timing in ("fit_seconds", "search_seconds"):
                if isinstance(summary, dict):
                    summary.pop(timing, None)
    return document


def test_seeds_evaluated_in_worker_processes_give_the_same_document():
    X, texts, categories = shop(seed=6)
    data = RatingsData(name="tiny", positives=X, rated=X, user_ids=[str(u) for u in range(USERS)],
                       item_ids=[str(i) for i in range(ITEMS)], item_titles=texts, item_texts=texts,
                       item_categories=categories, item_genres=[[c] for c in categories])
    steps: list[str] = []
    in_turn = evaluate(data, seeds=[3, 4], k=5, budget=3, workers=1)
    side_by_side = evaluate(data, seeds=[3, 4], k=5, budget=3, workers=2, progress=steps.append)
    assert _without_timings(side_by_side) == _without_timings(in_turn)
    assert side_by_side["seeds"] == [3, 4]
    assert len(steps) == 2 * STEPS_PER_SEED   # the command's progress bar still counts every step


def test_tuning_s_shared_products_rank_exactly_as_a_fresh_fit():
    from personalization.recommender.config import RecommenderConfig
    from personalization.recommender.fit_cache import FitCache
    from personalization.recommender.hybrid import HybridRecommender

    X, texts, categories = shop(seed=8)
    cache = FitCache()
    rows = list(range(0, USERS, 3))
    for blend in ({"content_weight": 0.5}, {"content_weight": 0.1, "popularity_weight": 0.02},
                  {"content_weight": 0.1, "cf_l2": 40.0, "exposure_capacity": 3.0}):
        config = RecommenderConfig(cf_rank=8, **blend)
        shared = HybridRecommender(config).fit(X, texts, categories, cache=cache)
        fresh = HybridRecommender(config).fit(X, texts, categories)
        assert shared._products and not fresh._products   # the products are kept only while tuning
        assert shared.rank(rows, 8) == fresh.rank(rows, 8)
        assert shared.rank([*rows, None], 8) == fresh.rank([*rows, None], 8)
    assert len(cache.content_product) == 1   # one content product for every blend


def test_every_popularity_exponent_shares_one_selection_of_weights():
    from personalization.recommender.config import RecommenderConfig
    from personalization.recommender.fit_cache import FitCache
    from personalization.recommender.hybrid import HybridRecommender

    X, texts, categories = shop(seed=9)
    cache = FitCache()
    for beta in (0.0, 0.1, 0.3):
        config = RecommenderConfig(cf_rank=8, cf_neighbours=6, cf_popularity_exponent=beta)
        shared = HybridRecommender(config).fit(X, texts, categories, cache=cache)
        fresh = HybridRecommender(config).fit(X, texts, categories)
        assert (shared.weights != fresh.weights).nnz == 0
    assert len(cache.selection) == 1
