"""What recommendation lists do beyond accuracy: plain numpy functions, no Django.

Every function takes the served lists as item indices (one sequence per person, best first)
and what it needs about the catalogue; lists are cut at `k` by the caller (`metrics_at`
does it). Definitions, with n the catalogue size, L_u person u's list and U the people:

coverage@k        |∪_u L_u| / n: the share of the catalogue recommended to anyone
                  ("catalogue coverage", Ge, Delgado-Battenfeld & Jannach, RecSys 2010).
gini@k            Gini coefficient of exposure: c_i = number of lists item i appears in, over
                  ALL n catalogue items (never-shown items count as 0), sorted ascending:
                  G = Σ_i (2i − n − 1)·c_(i) / (n·Σ_i c_i), i = 1..n. 0 when every item is
                  shown equally often, (n − 1)/n when one item takes all exposure
                  (Fleder & Hosanagar 2009; Adomavicius & Kwon 2012, "aggregate diversity").
novelty@k         mean over people of the mean self-information −log₂ p_i of their items,
                  p_i = (people who interacted with i) / (people): how unexpected an item is
                  to a random person (Zhou et al., PNAS 2010; Vargas & Castells, RecSys
                  2011). An item nobody interacted with counts as one person (finite).
ild@k             intra-list diversity: mean over people (lists of ≥ 2 items) of the mean
                  pairwise dissimilarity 1 − sim(i, j) over unordered pairs of their list
                  (Ziegler et al. 2005; Vargas & Castells 2011). sim: Jaccard of binary item
                  features (categories, genres) or cosine of item content vectors.
miscalibration@k  popularity miscalibration (Abdollahpouri et al., UMAP 2021, after Steck's
                  calibration, RecSys 2018): items are bucketed by popularity into head H
                  (the most popular items that together hold the first 20% of interactions),
                  tail T (the least popular holding the last 20%) and the middle M. For each
                  person, the H/M/T mix of their history P and of their list Q are compared by
                  the Jensen–Shannon divergence with log₂ (in [0, 1]); the mean over people
                  with both a history and a list. Hellinger distance is offered as well.
segment gaps      a metric computed per segment (group of people) and the gap between the
                  best and the worst segment, e.g. NDCG@k or coverage@k per customer segment
                  (Ekstrand et al. 2018, "All the cool kids": per-group accuracy differences).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import numpy as np
from scipy import sparse

Lists = Sequence[Sequence[int]]

HEAD_SHARE = 0.2   # share of interactions held by the head bucket (Abdollahpouri et al. 2021)
TAIL_SHARE = 0.2   # share held by the tail bucket
HEAD, MIDDLE, TAIL = 0, 1, 2


def exposure_counts(lists: Lists, n_items: int) -> np.ndarray:
    """How many lists each catalogue item appears in (an item counts once per list)."""
    counts = np.zeros(n_items, dtype=np.int64)
    for items in lists:
        unique = np.unique(np.asarray(list(items), dtype=np.int64))
        counts[unique] += 1
    return counts


def coverage(lists: Lists, n_items: int) -> float:
    """Catalogue coverage: the share of the n items that appear in at least one list."""
    if n_items <= 0:
        return 0.0
    return float((exposure_counts(lists, n_items) > 0).sum() / n_items)


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative values: 0 equal, (n − 1)/n all in one; 0 when all are 0."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n, total = x.size, x.sum()
    if n == 0 or total <= 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float(((2 * ranks - n - 1) * x).sum() / (n * total))


def exposure_gini(lists: Lists, n_items: int) -> float:
    """Gini of how often each catalogue item is shown, over the whole catalogue."""
    return gini(exposure_counts(lists, n_items))


def item_popularity(interactions: sparse.spmatrix) -> np.ndarray:
    """People who interacted with each item (non-zero entries per column of people × items)."""
    X = sparse.csc_matrix(interactions)
    X.eliminate_zeros()
    return np.diff(X.indptr).astype(np.float64)


def novelty(lists: Lists, popularity: np.ndarray, n_people: int) -> float:
    """Mean self-information −log₂(max(popularity_i, 1) / n_people) of the recommended items."""
    if n_people <= 0:
        return 0.0
    information = -np.log2(np.maximum(np.asarray(popularity, dtype=np.float64), 1.0) / n_people)
    per_list = [information[np.asarray(list(items), dtype=np.int64)].mean() for items in lists if len(items)]
    return float(np.mean(per_list)) if per_list else 0.0


def intra_list_diversity(lists: Lists, features: sparse.spmatrix | np.ndarray, *, similarity: str = "jaccard") -> float:
    """Mean over lists (≥ 2 items) of the mean pairwise 1 − similarity of their items' features.

    `features`: items × features. "jaccard" binarises it: |A ∩ B| / |A ∪ B| (0 when both are
    empty); "cosine": a·b / (|a||b|) (0 when either is all zero)."""
    if similarity not in ("jaccard", "cosine"):
        raise ValueError("similarity must be jaccard or cosine")
    F = sparse.csr_matrix(features, dtype=np.float64)
    if similarity == "jaccard":
        F = (F != 0).astype(np.float64)
        sizes = np.asarray(F.sum(axis=1)).ravel()
    else:
        norms = np.sqrt(np.asarray(F.multiply(F).sum(axis=1)).ravel())
    values = []
    for items in lists:
        idx = np.asarray(list(items), dtype=np.int64)
        m = idx.size
        if m < 2:
            continue
        sub = F[idx]
        dot = (sub @ sub.T).toarray()
        if similarity == "jaccard":
            union = sizes[idx][:, None] + sizes[idx][None, :] - dot
            sim = np.divide(dot, union, out=np.zeros_like(dot), where=union > 0)
        else:
            denominator = norms[idx][:, None] * norms[idx][None, :]
            sim = np.divide(dot, denominator, out=np.zeros_like(dot), where=denominator > 0)
        upper = np.triu_indices(m, k=1)
        values.append(float((1.0 - sim[upper]).mean()))
    return float(np.mean(values)) if values else 0.0


def popularity_buckets(popularity: np.ndarray, *, head_share: float = HEAD_SHARE,
                       tail_share: float = TAIL_SHARE) -> np.ndarray:
    """HEAD / MIDDLE / TAIL per item by its share of all interactions (Abdollahpouri et al. 2021).

    Items sorted by popularity, most popular first (ties by index): an item is head while
    the interactions before it are < head_share of the total, tail once the interactions
    before it are ≥ 1 − tail_share of the total."""
    pop = np.asarray(popularity, dtype=np.float64)
    buckets = np.full(pop.size, TAIL, dtype=np.int64)
    total = pop.sum()
    if total <= 0:
        return buckets
    order = np.lexsort((np.arange(pop.size), -pop))
    before = np.concatenate(([0.0], np.cumsum(pop[order])[:-1])) / total
    # An item nobody interacted with comes after all of them (before = 1): tail.
    buckets[order] = np.where(before < head_share, HEAD, np.where(before < 1.0 - tail_share, MIDDLE, TAIL))
    return buckets


def bucket_mix(items: Sequence[int], buckets: np.ndarray) -> np.ndarray:
    """The H/M/T shares of a set of items (sums to 1; zeros for no items)."""
    counts = np.bincount(buckets[np.asarray(list(items), dtype=np.int64)], minlength=3).astype(np.float64)
    return counts / counts.sum() if counts.sum() else counts


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """JS divergence with log₂: ½·KL(p‖m) + ½·KL(q‖m), m = (p + q)/2; in [0, 1]."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        keep = a > 0
        return float((a[keep] * np.log2(a[keep] / m[keep])).sum())

    return 0.5 * kl(p) + 0.5 * kl(q)


def hellinger(p: np.ndarray, q: np.ndarray) -> float:
    """Hellinger distance √(½·Σ(√p − √q)²); in [0, 1]."""
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    return float(np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum()))


DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"js": jensen_shannon, "hellinger": hellinger}


def popularity_miscalibration(histories: Lists, lists: Lists, buckets: np.ndarray, *, distance: str = "js") -> float:
    """Mean distance between the popularity-bucket mix of each history and of its list."""
    measure = DISTANCES[distance]
    values = [measure(bucket_mix(history, buckets), bucket_mix(items, buckets))
              for history, items in zip(histories, lists) if len(history) and len(items)]
    return float(np.mean(values)) if values else 0.0


def ndcg_per_person(lists: Lists, relevant: Sequence[set[int]], k: int) -> np.ndarray:
    """Binary-relevance NDCG@k per person (log₂ discounts, ideal DCG over min(|relevant|, k)); NaN
    for a person with nothing relevant, so that per-segment means skip them."""
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.full(len(lists), np.nan)
    for u, (items, rel) in enumerate(zip(lists, relevant)):
        if not rel:
            continue
        gains = np.array([item in rel for item in list(items)[:k]], dtype=np.float64)
        out[u] = (gains * discounts[:gains.size]).sum() / discounts[:min(len(rel), k)].sum()
    return out


def segment_gap(per_segment: dict[Hashable, float]) -> dict:
    """{"by_segment", "gap": best − worst, "best", "worst"} of per-segment values (NaNs left out)."""
    values = {segment: float(v) for segment, v in per_segment.items() if v is not None and np.isfinite(v)}
    if not values:
        return {"by_segment": {}, "gap": 0.0, "best": None, "worst": None}
    best = max(values, key=lambda s: (values[s], str(s)))
    worst = min(values, key=lambda s: (values[s], str(s)))
    return {"by_segment": values, "gap": values[best] - values[worst], "best": best, "worst": worst}


def _groups(segments: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for position, segment in enumerate(segments):
        if segment is not None:
            groups.setdefault(segment, []).append(position)
    return groups


def coverage_by_segment(lists: Lists, segments: Sequence[Hashable], n_items: int) -> dict:
    """Catalogue coverage of each segment's lists and the gap between segments (None: no segment)."""
    return segment_gap({s: coverage([lists[p] for p in people], n_items) for s, people in _groups(segments).items()})


def mean_by_segment(values: np.ndarray, segments: Sequence[Hashable]) -> dict:
    """Mean of a per-person metric (NaNs skipped) in each segment, and the gap between segments."""
    values = np.asarray(values, dtype=np.float64)
    means = {}
    for segment, people in _groups(segments).items():
        chosen = values[people]
        chosen = chosen[np.isfinite(chosen)]
        means[segment] = float(chosen.mean()) if chosen.size else float("nan")
    return segment_gap(means)


def metrics_at(lists: Lists, *, k: int, n_items: int, popularity: np.ndarray, n_people: int,
               features: sparse.spmatrix | np.ndarray | None = None, histories: Lists | None = None,
               similarity: str = "jaccard") -> dict[str, float]:
    """coverage@k, gini@k, novelty@k, ild@k (with `features`) and miscalibration@k (with
    `histories`, aligned with `lists`) of lists cut at k."""
    cut = [list(items)[:k] for items in lists]
    result = {f"coverage@{k}": coverage(cut, n_items), f"gini@{k}": exposure_gini(cut, n_items),
              f"novelty@{k}": novelty(cut, popularity, n_people)}
    if features is not None:
        result[f"ild@{k}"] = intra_list_diversity(cut, features, similarity=similarity)
    if histories is not None:
        result[f"miscalibration@{k}"] = popularity_miscalibration(histories, cut, popularity_buckets(popularity))
    return result
