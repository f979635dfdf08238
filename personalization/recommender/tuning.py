"""Tessera's hyper-parameters, chosen on a validation split of the training data, and the one
function that fits what is served.

`tune` runs the shared search (search.py: the same validation split and budget as every
baseline in the evaluation) over the hybrid's grid; a configuration's score is its NDCG@k on the
validation split, with consumed items excluded by the production rule (exclusion.py). Pieces
that do not depend on the parameter being varied (the randomized SVD, the content similarity)
are fitted once and reused through `FitCache`.

`fit_tuned` is what the pipeline serves and what `evaluate_recommender` reports as "tessera":
tune on the data given, then fit the chosen configuration on all of it. One code path, so the
evaluation measures exactly what production would serve for that data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from personalization.recommender.config import RecommenderConfig
from personalization.recommender.feedback import RELEVANT_WEIGHT
from personalization.recommender.fit_cache import FitCache
from personalization.recommender.hybrid import HybridRecommender
from personalization.recommender.protocol import ndcg_at
from personalization.recommender.search import SEARCH_BUDGET, coordinate_search, validation_split

# Ordered: the cheap-to-vary and most influential first (the budget may end the search early).
SEARCH_SPACE: dict[str, tuple] = {
    "cf_l2": (8.0, 12.0, 27.0, 40.0),
    "cf_diag_reg": (1.0, 2.0, 8.0),
    "cf_popularity_exponent": (0.0, 0.1, 0.3),
    "content_weight": (0.0, 0.002, 0.004),
    "cf_user_exponent": (0.0, 0.45),
    "popularity_weight": (0.01, 0.03),
    "cf_neighbours": (400, 1200),
    "cf_rank": (192, 512),
}
# The re-ranking's knob (reranking.py) is chosen after the search, on the same validation split:
# the strongest capacity whose validation NDCG@k keeps at least 1 − CAPACITY_TOLERANCE of the
# unconstrained one's. 15% is a product decision: issue #16 accepts accuracy down to 0.3317
# against the 0.398 Tessera reaches on ml-100k (17% less) in exchange for a flatter exposure.
CAPACITY_GRID = (8.0, 6.0, 4.0, 3.0, 2.0, 1.5)
CAPACITY_TOLERANCE = 0.15


@dataclass
class TuningResult:
    config: RecommenderConfig
    validation_ndcg: float          # of the chosen configuration
    start_ndcg: float               # of the starting configuration
    search_ndcg: float = 0.0        # of the search's best, before the re-ranking's knob
    capacity_trials: list[dict[str, Any]] = field(default_factory=list)   # the knob's, on the same split
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def searched_params(self, space: dict[str, tuple] | None = None) -> dict[str, Any]:
        """The chosen values of the searched hyper-parameters."""
        values = self.config.to_dict()
        return {name: values[name] for name in (space if space is not None else SEARCH_SPACE)}


def tune(interactions: sparse.spmatrix, item_texts: Sequence[str] | None = None,
         item_categories: Sequence[str] | None = None, user_segments: np.ndarray | None = None, *, seed: int,
         k: int = 10, start: RecommenderConfig | None = None, search_space: dict[str, tuple] | None = None,
              budget: int = SEARCH_BUDGET, max_seconds: float | None = None, consumed: sparse.spmatrix | None = None,
         relevant_min: float | None = RELEVANT_WEIGHT, progress: Callable[[str], None] | None = None,
         capacities: Sequence[float] = CAPACITY_GRID) -> TuningResult:
    """Choose hyper-parameters for `interactions` (the training data: never pass test data).

    `consumed` (rows aligned with `interactions`) is excluded when scoring, as in production;
    the validation split holds out (and scores as hits) only interactions weighing at least
    `relevant_min` (feedback.py: carts, purchases, ratings of four or more).
    Returns the chosen configuration with `seed` set; fit it on all of `interactions`.
    The search runs without the re-ranking; then `exposure_capacity` is the strongest of
    `capacities` within CAPACITY_TOLERANCE of the search's best validation NDCG (0 if none is).
    """
    base = (start or RecommenderConfig()).replace(seed=seed, exposure_capacity=0.0)
    space = search_space if search_space is not None else SEARCH_SPACE
    validation = validation_split(interactions, seed=seed, consumed=consumed, relevant_min=relevant_min)
    cache = FitCache()
    users = validation.users
    exclude = validation.consumed[users] if validation.consumed is not None else None

    def score(params: dict[str, Any]) -> float:
        if not len(users):
            return 0.0
        model = HybridRecommender(base.replace(**params)).fit(validation.train, item_texts, item_categories,
                                                              user_segments, cache=cache)
        return ndcg_at(model.rank(users, k, exclude=exclude), validation.test, users, k=k)

    start_params = {name: getattr(base, name) for name in space}
    result = coordinate_search(start_params, space, score, budget=budget, max_seconds=max_seconds,
                               progress=progress)
    params, best = dict(result.params), result.score
    trials: list[dict[str, Any]] = []
    for capacity in sorted(capacities, reverse=True):   # weakest first: accuracy falls as C does
        ndcg = score({**result.params, "exposure_capacity": capacity})
        trials.append({"params": {**result.params, "exposure_capacity": capacity}, "score": ndcg})
        if ndcg < (1 - CAPACITY_TOLERANCE) * result.score:
            break
        params, best = {**result.params, "exposure_capacity": capacity}, ndcg
    return TuningResult(config=base.replace(**params), validation_ndcg=best, start_ndcg=result.start_score,
                        search_ndcg=result.score, capacity_trials=trials, trials=result.trials,
                        seconds=result.seconds)


def fit_tuned(interactions: sparse.spmatrix, item_texts: Sequence[str] | None, item_categories: Sequence[str] | None,
              user_segments: np.ndarray | None, *, seed: int, k: int = 10, budget: int = SEARCH_BUDGET,
              max_seconds: float | None = None, consumed: sparse.spmatrix | None = None,
              progress: Callable[[str], None] | None = None) -> tuple[HybridRecommender, TuningResult]:
    """Tune on `interactions`, then fit the chosen configuration on all of it: what is served."""
    tuning = tune(interactions, item_texts, item_categories, user_segments, seed=seed, k=k, budget=budget,
                  max_seconds=max_seconds, consumed=consumed, progress=progress)
    model = HybridRecommender(tuning.config).fit(interactions, item_texts, item_categories, user_segments)
    return model, tuning
