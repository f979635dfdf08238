"""The offline protocol shared by `tune` (validation) and `evaluate_recommender` (test).

Split: for each person in row order, their positives are shuffled with one generator seeded
once, round(20%) of them (at least one) are held out and the rest kept for training; people
with fewer than two positives keep everything in training. Every person with a held-out
positive is evaluated, against all items minus their training positives, with binary
relevance.

Metrics at K, averaged over evaluated people: precision (hits / K), recall (hits / held-out
count), NDCG with log2 discounts (ideal DCG over min(held-out, K) hits), MAP (average precision
normalised by min(held-out, K)); catalogue coverage is the share of items recommended to
anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

HELD_OUT_FRACTION = 0.2


@dataclass
class Split:
    train: sparse.csr_matrix
    test: sparse.csr_matrix

    @property
    def evaluated_users(self) -> np.ndarray:
        """Rows with at least one held-out positive."""
        return np.flatnonzero(np.diff(self.test.indptr) > 0)


def split_per_user(matrix: sparse.spmatrix, *, seed: int, fraction: float = HELD_OUT_FRACTION) -> Split:
    """Hold out round(fraction·n) (≥ 1) of each person's n ≥ 2 interactions; weights are kept."""
    X = sparse.csr_matrix(matrix, copy=True)
    X.eliminate_zeros()
    X.sort_indices()
    rng = np.random.default_rng(seed)
    held = np.zeros(X.nnz, dtype=bool)
    for u in range(X.shape[0]):
        start, stop = X.indptr[u], X.indptr[u + 1]
        n = stop - start
        if n < 2:
            continue
        n_held = max(1, int(fraction * n + 0.5))
        held[start + rng.permutation(n)[:n_held]] = True
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    train = sparse.csr_matrix((X.data[~held], (rows[~held], X.indices[~held])), shape=X.shape)
    test = sparse.csr_matrix((np.ones(held.sum()), (rows[held], X.indices[held])), shape=X.shape)
    return Split(train=train, test=test)


def ranking_metrics(recommended: Sequence[Sequence[int]], test: sparse.csr_matrix, users: Sequence[int], *,
                    k: int, n_items: int) -> dict[str, float]:
    """Mean precision/recall/NDCG/MAP at k over `users` (aligned with `recommended`), and coverage."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    totals = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0}
    shown: set[int] = set()
    for user, items in zip(users, recommended):
        relevant = set(test.indices[test.indptr[user]:test.indptr[user + 1]].tolist())
        items = list(items)[:k]
        shown.update(items)
        hits = np.array([item in relevant for item in items], dtype=float)
        if hits.size < k:
            hits = np.pad(hits, (0, k - hits.size))
        ideal = min(len(relevant), k)
        totals["precision"] += hits.sum() / k
        totals["recall"] += hits.sum() / len(relevant)
        totals["ndcg"] += (hits * discounts).sum() / discounts[:ideal].sum()
        precision_at = np.cumsum(hits) / np.arange(1, k + 1)
        totals["map"] += (precision_at * hits).sum() / ideal
    count = max(len(users), 1)
    result = {f"{name}@{k}": value / count for name, value in totals.items()}
    result["coverage"] = len(shown) / n_items if n_items else 0.0
    return result


def ndcg_at(recommended: Sequence[Sequence[int]], test: sparse.csr_matrix, users: Sequence[int], *, k: int) -> float:
    return ranking_metrics(recommended, test, users, k=k, n_items=test.shape[1])[f"ndcg@{k}"]
