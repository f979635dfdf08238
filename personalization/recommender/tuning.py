"""Hyper-parameter search on a validation split carved out of the training data only.

The training interactions are split again with the evaluation protocol (protocol.py, seeds
derived from the caller's) into `folds` independent validation splits; a configuration's
score is its NDCG@k on the held-out parts, averaged over the folds. The search is coordinate
descent from the starting configuration: each hyper-parameter in turn takes the best value
of its grid with the others fixed, for a few passes, and a change is kept only if it improves
the score by more than `min_gain` (relative). On MovieLens-100k one fold's NDCG moves by about
1% between equally good configurations, which is why there are two folds and a threshold:
without them tuning chases noise. Pieces that do not depend on the parameter being varied (the
randomized SVD, the content similarity) are fitted once per fold and reused through
`FitCache`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from personalization.recommender.config import RecommenderConfig
from personalization.recommender.hybrid import FitCache, HybridRecommender
from personalization.recommender.protocol import ndcg_at, split_per_user

# Ordered: the cheap-to-vary and most influential first.
SEARCH_SPACE: dict[str, tuple] = {
    "cf_l2": (8.0, 12.0, 18.0, 27.0, 40.0),
    "cf_diag_reg": (1.0, 2.0, 4.0, 8.0),
    "cf_popularity_exponent": (0.0, 0.1, 0.2, 0.3, 0.4),
    "cf_user_exponent": (0.0, 0.3, 0.45),
    "cf_rank": (192, 384, 512),
    "cf_neighbours": (400, 800, 1200),
    "content_weight": (0.0, 0.001, 0.002, 0.004),
    "popularity_weight": (0.0, 0.01, 0.03),
}
VALIDATION_SEED_OFFSET = 7919  # the validation split must not reuse the test split's draws


@dataclass
class TuningResult:
    config: RecommenderConfig
    validation_ndcg: float          # of the chosen configuration
    start_ndcg: float               # of the starting configuration
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def tune(interactions: sparse.spmatrix, item_texts: Sequence[str] | None = None,
         item_categories: Sequence[str] | None = None, user_segments: np.ndarray | None = None, *, seed: int,
         k: int = 10, start: RecommenderConfig | None = None, search_space: dict[str, tuple] | None = None,
         folds: int = 2, passes: int = 2, min_gain: float = 0.005, max_validation_users: int = 5000,
         progress: Callable[[str], None] | None = None) -> TuningResult:
    """Choose hyper-parameters for `interactions` (the training data: never pass test data).

    Returns the chosen configuration with `seed` set; fit it on all of `interactions`.
    """
    started = time.perf_counter()
    base = (start or RecommenderConfig()).replace(seed=seed)
    space = search_space if search_space is not None else SEARCH_SPACE
    validations = []
    for fold in range(folds):
        inner = split_per_user(interactions, seed=seed + VALIDATION_SEED_OFFSET * (fold + 1))
        users = inner.evaluated_users
        if len(users) > max_validation_users:
            users = np.sort(np.random.default_rng(seed + fold).choice(users, max_validation_users, replace=False))
        validations.append((inner, users, FitCache()))
    scores: dict[RecommenderConfig, float] = {}
    trials: list[dict[str, Any]] = []

    def score(config: RecommenderConfig) -> float:
        if config not in scores:
            per_fold = []
            for inner, users, cache in validations:
                model = HybridRecommender(config).fit(inner.train, item_texts, item_categories, user_segments,
                                                      cache=cache)
                per_fold.append(ndcg_at(model.rank(users, k), inner.test, users, k=k) if len(users) else 0.0)
            scores[config] = float(np.mean(per_fold))
            trials.append({"changes": _changes(base, config), f"ndcg@{k}": scores[config]})
            if progress is not None:
                progress(f"trial {len(trials)}")
        return scores[config]

    best = base
    best_score = start_score = score(base)
    for _ in range(passes):
        moved = False
        for name, values in space.items():
            for value in values:
                candidate = best.replace(**{name: value})
                if score(candidate) > best_score * (1 + min_gain):
                    best, best_score, moved = candidate, scores[candidate], True
        if not moved:
            break
    return TuningResult(config=best, validation_ndcg=best_score, start_ndcg=start_score, trials=trials,
                        seconds=time.perf_counter() - started)


def _changes(base: RecommenderConfig, config: RecommenderConfig) -> dict[str, Any]:
    before, after = base.to_dict(), config.to_dict()
    return {name: value for name, value in after.items() if before[name] != value}
