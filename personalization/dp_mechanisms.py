"""OpenDP measurements, and DP-Lloyd: segment definitions that are differentially private.

No Django and no ledger: `personalization.privacy` pays for what these compute (the
pipeline), `services/segment_evaluation.py` runs them on a file to measure their utility.
Every data-dependent step is an OpenDP measurement with a bounded per-person contribution;
what is built from their outputs (centroids, names, RFM cut points) is post-processing.

DP-Lloyd (Blum et al. 2005; Su et al. 2016): features are scaled into [0, 1] by public
bounds (segmentation.LOG_UPPER; no statistic of the data is used), written as integers
0..GRID. A first round releases the overall mean; the starting centroids are spread around
it along a public axis (segmentation.initial_centroids).
Each iteration assigns people to the nearest centroid and releases, per segment, a noisy
count (one histogram) and noisy sums of each feature (segments are disjoint, so each
feature's sums compose in parallel); the new centroid is noisy sum / noisy count. The RFM
cut points are quantiles of a noisy histogram of each RFM feature. The whole procedure's ε
is the sum of its measurements' privacy maps at one row per person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import opendp.prelude as dp

from personalization import segmentation

dp.enable_features("contrib")

ITERATIONS = 3  # the first finds the overall mean the centroids start around
# Shares of the definition's ε: Lloyd's counts, Lloyd's sums, the RFM cut points.
SHARES = {"counts": 0.15, "sums": 0.7, "rfm_cuts": 0.15}
RFM_BINS = 40


def _scale_for(build: Callable[[float], dp.Measurement], *, d_in: int, epsilon: float) -> float:
    """The smallest noise scale whose privacy map at d_in is within epsilon."""
    return float(dp.binary_search_param(build, d_in=d_in, d_out=epsilon))


def histogram_measurement(categories: list[int], *, d_in: int, epsilon: float) -> tuple[dp.Measurement, float]:
    """Counts per category: each person adds at most d_in rows, so at most d_in to the L1
    distance; discrete Laplace noise. Returns (measurement, scale)."""
    space = (dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance())
    counts = dp.t.make_count_by_categories(*space, categories=categories, null_category=False)
    scale = _scale_for(lambda s: counts >> dp.m.then_laplace(scale=s), d_in=d_in, epsilon=epsilon)
    return counts >> dp.m.then_laplace(scale=scale), scale


def clamped_sum_transformation(upper: int) -> dp.Transformation:
    """One person's value clamped to [0, upper], summed: stability = upper per row."""
    space = (dp.vector_domain(dp.atom_domain(T=dp.i64)), dp.symmetric_distance())
    return space >> dp.t.then_clamp((0, upper)) >> dp.t.then_sum()


def clamped_sum_measurement(*, epsilon: float, upper: int) -> tuple[dp.Measurement, float]:
    total = clamped_sum_transformation(upper)
    scale = _scale_for(lambda s: total >> dp.m.then_laplace(scale=s), d_in=1, epsilon=epsilon)
    return total >> dp.m.then_laplace(scale=scale), scale


@dataclass
class DpLloydPlan:
    """The measurements DP-Lloyd will make: their maps are its price, before any data is read."""

    k: int
    epsilon: float
    iterations: int
    counts: dp.Measurement
    counts_scale: float
    sums: dp.Measurement
    sums_scale: float
    rfm: dp.Measurement
    rfm_scale: float

    def measurements(self) -> list[dp.Measurement]:
        """Every measurement in the order made (sequential composition: ε adds up)."""
        per_iteration = [self.counts] + [self.sums] * len(segmentation.FEATURES)
        return per_iteration * self.iterations + [self.rfm] * len(segmentation.RFM_FEATURES)


def dp_lloyd_plan(*, k: int, epsilon: float, iterations: int = ITERATIONS) -> DpLloydPlan:
    features = len(segmentation.FEATURES)
    per_count = epsilon * SHARES["counts"] / iterations
    per_sum = epsilon * SHARES["sums"] / (iterations * features)
    per_rfm = epsilon * SHARES["rfm_cuts"] / len(segmentation.RFM_FEATURES)
    counts, counts_scale = histogram_measurement(list(range(k)), d_in=1, epsilon=per_count)
    sums, sums_scale = clamped_sum_measurement(epsilon=per_sum, upper=segmentation.GRID)
    rfm, rfm_scale = histogram_measurement(list(range(RFM_BINS)), d_in=1, epsilon=per_rfm)
    return DpLloydPlan(k, epsilon, iterations, counts, counts_scale, sums, sums_scale, rfm, rfm_scale)


def plan_epsilon(plan: DpLloydPlan) -> float:
    return float(sum(m.map(1) for m in plan.measurements()))


def dp_lloyd_fit(raw: np.ndarray, plan: DpLloydPlan, *, seed: int) -> dict:
    """Run the plan on the raw feature matrix: the fitted model (segmentation.assign reads it)
    with its centroids, from noisy outputs only. `raw` is read only through the plan's
    measurements (and for assigning people to the current noisy centroids)."""
    raw = np.asarray(raw, dtype=float)
    model = segmentation.unit_model()
    points = segmentation.to_grid(raw, model)
    centroids = None
    noisy_counts = np.zeros(plan.k)
    for _ in range(plan.iterations):
        # The first round puts everyone in one group: its noisy means are where the starting
        # centroids go. It costs what a round costs (the same measurements).
        labels = np.zeros(len(points), dtype=np.int64) if centroids is None else \
            segmentation.nearest(points / segmentation.GRID, centroids)
        noisy_counts = np.asarray(plan.counts(labels.tolist()), dtype=float)
        sums = np.asarray([[plan.sums(points[labels == c, j].tolist()) for j in range(points.shape[1])]
                           for c in range(plan.k)], dtype=float)
        moved = np.clip(sums / np.maximum(noisy_counts, 1.0)[:, None] / segmentation.GRID, 0.0, 1.0)
        if centroids is None:
            centroids = segmentation.initial_centroids(plan.k, centre=moved[0], seed=seed)
            continue
        # A segment whose noisy count is within the noise of nothing keeps its centroid:
        # dividing noise by noise would throw it anywhere.
        solid = noisy_counts > 3 * plan.counts_scale
        centroids = np.where(solid[:, None], moved, centroids)
    model["centroids"] = centroids.tolist()
    model["noisy_counts"] = [round(float(c), 1) for c in noisy_counts]
    model["rfm_cuts"] = _rfm_cuts(points, plan)
    return model


def _rfm_cuts(points: np.ndarray, plan: DpLloydPlan) -> dict:
    """Quintile cut points of each RFM feature from a noisy histogram (in original units)."""
    cuts = {}
    for name in segmentation.RFM_FEATURES:
        j = segmentation.FEATURES.index(name)
        bins = np.minimum(points[:, j] * RFM_BINS // (segmentation.GRID + 1), RFM_BINS - 1).astype(np.int64)
        counts = np.maximum(np.asarray(plan.rfm(bins.tolist()), dtype=float), 0.0)
        cumulative = np.cumsum(counts) / max(counts.sum(), 1.0)
        edges = [(int(np.searchsorted(cumulative, q)) + 1) / RFM_BINS for q in (0.2, 0.4, 0.6, 0.8)]
        cuts[name] = [float(segmentation.from_unit(e, name)) for e in edges]
    return cuts
