"""Offline evaluation of the segmentation on a transactions file (UCI Online Retail shape).

Reads the file(s) with cdp.importers.transactions (stores nothing, needs no database),
builds the same RFM features the pipeline computes in the database (recency from the
last purchase, frequency as distinct purchase times, monetary as quantity × price,
tenure; no browsing data); chooses k by resampled stability and silhouette, fits K-Means,
and measures the private segments (DP-Lloyd) against it. Logs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import numpy as np
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, pairwise_distances

from cdp.importers.common import Rejected
from cdp.importers.transactions import read_transactions
from personalization import dp_mechanisms, segmentation
from personalization.privacy import EPSILON

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
    """The contract's JSON: k (chosen by resampled stability and silhouette, at least
    MIN_USEFUL_K), silhouette, Davies–Bouldin, sizes, stability (resampled ARI) and named
    segments with their centroids and RFM profiles; then the private segments (DP-Lloyd at the
    pipeline's ε, one fit per seed) measured against it on the same customers."""
    customers, matrix = transactions_features(path=path, timezone=timezone, on_progress=on_progress)
    choice = segmentation.choose_k(matrix, seeds)
    result = segmentation.fit(matrix, seed=seeds[0], k_range=(choice.k, choice.k))
    profiles = segmentation.rfm_profile(matrix, result.labels, result.k)
    summary = result.summary()
    for segment, profile in zip(summary["segments"], profiles):
        segment["rfm"] = profile
    return {
        **summary,
        "stability_ari": choice.by_k[choice.k]["stability_ari"],
        "stability_method": f"adjusted Rand index between K-Means fits on two {segmentation.SUBSAMPLE:.0%} "
                            "subsamples of the customers, on those both hold, averaged over the seeds",
        "k_rule": choice.rule,
        "by_k": {str(k): v for k, v in sorted(choice.by_k.items())},
        "customers": len(customers),
        "seeds": seeds,
        "private": private_segmentation_evaluate(matrix, labels=result.labels, k=result.k, seeds=seeds),
    }


def private_segmentation_evaluate(matrix: np.ndarray, *, labels: np.ndarray, k: int, seeds: list[int]) -> dict:
    """DP-Lloyd at the pipeline's ε and the same k, once per seed (fresh noise each time):
    silhouette and Davies–Bouldin of its segments in the same space as the non-private fit's,
    agreement with that fit (ARI), and the RFM profile of each private segment (first seed).
    The noisy fits spend no budget: the file is the operator's, inside the boundary."""
    epsilon = EPSILON["segment_definition"]
    plan = dp_mechanisms.dp_lloyd_plan(k=k, epsilon=epsilon)
    scaled = segmentation.standardized(matrix)
    sample = np.random.default_rng(seeds[0]).choice(len(matrix), size=min(len(matrix), segmentation.SILHOUETTE_SAMPLE),
                                                    replace=False)
    distances = pairwise_distances(scaled[sample]).astype(np.float32)
    runs = []
    for seed in seeds:
        model, names, centroids = segmentation.describe(dp_mechanisms.dp_lloyd_fit(matrix, plan, seed=seed))
        private = segmentation.assign(matrix, model)
        used = len(np.unique(private))
        runs.append({
            "seed": seed, "model": model, "names": names, "centroids": centroids, "labels": private,
            "silhouette": round(segmentation.silhouette(distances, private[sample]), 6) if used > 1 else None,
            "davies_bouldin": round(float(davies_bouldin_score(scaled, private)), 6) if used > 1
            else None,
            "ari_vs_non_private": round(float(adjusted_rand_score(labels, private)), 6),
        })
    first = runs[0]
    profiles = segmentation.rfm_profile(matrix, first["labels"], k)
    sizes = np.bincount(first["labels"], minlength=k).tolist()

    def mean(key: str):
        values = [r[key] for r in runs if r[key] is not None]
        return round(float(np.mean(values)), 6) if values else None

    return {
        "epsilon": round(dp_mechanisms.plan_epsilon(plan), 6), "mechanism": "DP-Lloyd (OpenDP)",
        "iterations": plan.iterations, "k": k,
        "silhouette": mean("silhouette"), "davies_bouldin": mean("davies_bouldin"),
        "ari_vs_non_private": mean("ari_vs_non_private"),
        "per_seed": [{key: r[key] for key in ("seed", "silhouette", "davies_bouldin", "ari_vs_non_private")}
                     for r in runs],
        "sizes": sizes,
        "segments": [{"name": n, "size": size, "centroid": c, "rfm": p}
                     for n, size, c, p in zip(first["names"], sizes, first["centroids"], profiles)],
    }
