"""The one hyper-parameter search every model gets, on a validation split of the training data.

`validation_split` carves a validation split out of the training data it is given with the
evaluation protocol (protocol.py) and a seed derived from the caller's, so it never reuses the
test split's draws; `coordinate_search` walks a model's grid one hyper-parameter at a time
from its starting point (each takes the best value of its grid with the others fixed, for up
to two passes) and stops after `budget` distinct configurations or `max_seconds`. Tessera and
every tuned baseline go through these two functions with the same budget, so the comparison
is like for like.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from personalization.recommender.exclusion import consumed_outside
from personalization.recommender.protocol import Split, split_per_user

SEARCH_BUDGET = 16                 # configurations evaluated per model (the starting one included)
VALIDATION_SEED_OFFSET = 7919      # the validation split must not reuse the test split's draws
MAX_VALIDATION_USERS = 5000


@dataclass
class Validation:
    """Train on `train`, score `users` against `test`, never recommending `consumed` (or None)."""

    train: sparse.csr_matrix
    test: sparse.csr_matrix
    users: np.ndarray
    consumed: sparse.csr_matrix | None


def validation_split(train: sparse.spmatrix, *, seed: int, consumed: sparse.spmatrix | None = None,
                     relevant_min: float | None = None, max_users: int = MAX_VALIDATION_USERS) -> Validation:
    """A validation split of `train` (training data only: never pass test data).

    `consumed` is what the caller will exclude when scoring (rows aligned with `train`); what
    the validation split holds out is taken out of it, or it would never be recommended.
    `relevant_min`: only interactions weighing at least this much are held out (and scored as
    hits); the lighter ones all stay in training. The held-out draws depend only on the
    relevant entries, so a matrix of positives and the same positives plus lighter history
    get the same validation targets.
    """
    X = sparse.csr_matrix(train, dtype=np.float64)
    X.eliminate_zeros()
    relevant = X
    if relevant_min is not None:
        relevant = sparse.csr_matrix(X.multiply(relevant_min <= X))
        relevant.eliminate_zeros()
        if relevant.nnz == 0:   # nothing weighs that much: every interaction counts
            relevant = X
    inner = split_per_user(relevant, seed=seed + VALIDATION_SEED_OFFSET)
    if relevant is not X:
        held = inner.test
        rest = X - X.multiply(held)
        rest.eliminate_zeros()
        inner = Split(train=sparse.csr_matrix(rest), test=held)
    users = inner.evaluated_users
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    inner_consumed = consumed_outside(consumed, inner.test) if consumed is not None else None
    return Validation(train=inner.train, test=inner.test, users=users, consumed=inner_consumed)


@dataclass
class SearchResult:
    params: dict[str, Any]
    score: float                    # validation score of `params`
    start_score: float
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0


def coordinate_search(start: dict[str, Any], space: dict[str, tuple], score: Callable[[dict[str, Any]], float], *,
                      budget: int = SEARCH_BUDGET, max_seconds: float | None = None, passes: int = 2,
                      progress: Callable[[str], None] | None = None) -> SearchResult:
    """The best configuration found by at most `budget` evaluations of `score` (higher is better)."""
    started = time.perf_counter()
    scores: dict[tuple, float] = {}
    trials: list[dict[str, Any]] = []

    def evaluate(params: dict[str, Any]) -> float:
        key = tuple(sorted(params.items()))
        if key not in scores:
            scores[key] = float(score(params))
            trials.append({"params": dict(params), "score": scores[key]})
            if progress is not None:
                progress(f"trial {len(trials)}")
        return scores[key]

    def exhausted() -> bool:
        over_time = max_seconds is not None and time.perf_counter() - started > max_seconds
        return len(trials) >= budget or over_time

    best = dict(start)
    best_score = start_score = evaluate(best)
    for _ in range(passes):
        moved = False
        for name, values in space.items():
            for value in values:
                candidate = {**best, name: value}
                if tuple(sorted(candidate.items())) not in scores and exhausted():
                    return SearchResult(best, best_score, start_score, trials, time.perf_counter() - started)
                if evaluate(candidate) > best_score:
                    best, best_score, moved = candidate, scores[tuple(sorted(candidate.items()))], True
        if not moved:
            break
    return SearchResult(best, best_score, start_score, trials, time.perf_counter() - started)
