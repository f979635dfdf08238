"""Offline evaluation of the segmentation on a transactions file (UCI Online Retail shape).

Reads the file(s) with cdp.importers.transactions (stores nothing, needs no database),
builds the same RFM features the pipeline computes in the database (recency from the
last purchase, frequency as distinct purchase times, monetary as quantity × price,
tenure; no browsing data), and fits once per seed. Logs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np

from cdp.importers.common import Rejected
from cdp.importers.transactions import read_transactions
from personalization import segmentation

DAY = 86_400.0


def transactions_features(*, path: str, timezone: str = "Europe/London",
                          on_progress: Callable[[int], None] | None = None) -> tuple[list[str], np.ndarray]:
    """(customer ids, raw feature matrix in segmentation.FEATURES order)."""
    first: dict[str, object] = {}
    last: dict[str, object] = {}
    times: dict[str, set] = {}
    spend: dict[str, float] = {}
    for row in read_transactions(path, timezone=timezone):
        if on_progress:
            on_progress(1)
        if isinstance(row, Rejected):
            continue
        customer, at = row.customer_id, row.occurred_at
        if customer not in first or at < first[customer]:
            first[customer] = at
        if customer not in last or at > last[customer]:
            last[customer] = at
        times.setdefault(customer, set()).add(at)
        spend[customer] = spend.get(customer, 0.0) + row.quantity * float(row.unit_price)
    customers = sorted(first)
    if not customers:
        return [], np.zeros((0, len(segmentation.FEATURES)))
    # The day after the last sale, as RFM studies of this data set do.
    as_of = max(last.values()) + timedelta(days=1)
    matrix = np.asarray([
        [(as_of - last[c]).total_seconds() / DAY, len(times[c]), spend[c], (as_of - first[c]).total_seconds() / DAY,
         0.0]
        for c in customers
    ], dtype=float)
    return customers, matrix


def segmentation_evaluate(*, path: str, seeds: list[int], timezone: str = "Europe/London",
                          on_progress: Callable[[int], None] | None = None) -> dict:
    """The contract's JSON: k, silhouette, Davies–Bouldin, sizes, stability (mean pairwise
    adjusted Rand index across seeds) and named segments with their centroids."""
    customers, matrix = transactions_features(path=path, timezone=timezone, on_progress=on_progress)
    results, ari = segmentation.stability(matrix, seeds)
    first = results[0]
    return {
        **first.summary(),
        "stability_ari": ari,
        "customers": len(customers),
        "seeds": seeds,
        "k_per_seed": [r.k for r in results],
        "silhouette_by_k": {str(k): v for k, v in first.k_scores.items()},
    }
