"""Top-k selection shared by the recommender and the evaluation baselines."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, allowed: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest allowed scores, best first, ties broken by the lower index."""
    pool = np.flatnonzero(allowed)
    if k <= 0 or pool.size == 0:
        return pool[:0]
    values = scores[pool]
    if pool.size > k:
        # Everything tied with the k-th value stays in, so the index tie-break is exact.
        threshold = np.partition(values, pool.size - k)[pool.size - k]
        inside = values >= threshold
        pool, values = pool[inside], values[inside]
    order = np.lexsort((pool, -values))
    return pool[order[:k]]
