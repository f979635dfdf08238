"""Segmentation maths: the private fit's space, K-Means, stability, k choice and RFM profiles.

Pure numpy and scikit-learn over a feature matrix, no Django. The pipeline's segments are
fitted by DP-Lloyd (personalization.dp_mechanisms) in a unit space scaled by public bounds
(`unit_model`, `to_grid`, `initial_centroids`) and described here (`describe`: value order,
archetype names, centroids in original units). Non-private K-Means (`fit`), resampled
stability, the choice of k and RFM profiles serve `evaluate_segmentation`, run on a file
inside the operator boundary. A fitted segmentation is a small JSON-able dict (`model`), so
chunk tasks on any worker assign members exactly as the fit did.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score, davies_bouldin_score, pairwise_distances
from threadpoolctl import threadpool_limits

# The columns K-Means sees, in this order. Engagement = views + add-to-carts + ratings.
FEATURES = ("recency_days", "frequency", "monetary", "tenure_days", "engagement")
# Counts and money are heavy-tailed: without the log a handful of big spenders would be
# clusters of their own and everyone else one blob.
LOG_FEATURES = frozenset(FEATURES)
K_RANGE = (2, 8)
SILHOUETTE_SAMPLE = 5_000  # silhouette is O(n²): beyond this it is estimated on a sample
SELECTION_SAMPLE = 20_000  # k is chosen on at most this many profiles, then refitted on all
MIN_POPULATION = 10

# Named archetypes as target centroids in standardized units (recency, frequency, monetary,
# tenure, engagement); each segment gets the name whose target is nearest, one name per
# segment (Hungarian matching), so names follow the centroids rather than the cluster ids.
ARCHETYPES: dict[str, tuple[float, ...]] = {
    "High-value loyal": (-0.8, 1.2, 1.2, 0.6, 0.6),
    "Loyal": (-0.5, 0.6, 0.4, 0.6, 0.3),
    "At risk": (0.9, 0.5, 0.6, 0.5, 0.0),
    "Big spenders": (0.0, -0.2, 1.0, 0.0, 0.0),
    "New": (-0.9, -0.6, -0.5, -1.2, -0.2),
    "Promising": (-0.4, 0.0, 0.0, -0.5, 0.2),
    "Hibernating": (1.0, -0.6, -0.6, 0.3, -0.5),
    "Browsers": (0.0, -0.8, -0.8, 0.0, 0.8),
    "Regular": (0.0, 0.0, 0.0, 0.0, 0.0),
}
# What each name means, in words for the customers it describes (their export, their page).
ARCHETYPE_DESCRIPTIONS: dict[str, str] = {
    "High-value loyal": "customers who buy often, recently and spend the most",
    "Loyal": "customers who come back and buy regularly",
    "At risk": "customers who used to buy often but not lately",
    "Big spenders": "customers whose orders are larger than most",
    "New": "customers who started buying recently",
    "Promising": "recent customers who have started coming back",
    "Hibernating": "customers who have not bought anything for a while",
    "Browsers": "customers who look around a lot but buy less often",
    "Regular": "customers who buy about as often and as much as most",
}


# --- the private fit's space: public bounds, no statistic of the data -------------------------------

# Each feature after log1p is divided by the log of a public upper bound (values above it
# count as the bound), so people land in [0, 1] without a mean or a deviation learnt from
# them; GRID writes that as whole numbers for OpenDP's exact integer sums.
UPPER = {"recency_days": 3_650.0, "frequency": 1_000.0, "monetary": 100_000.0, "tenure_days": 3_650.0,
         "engagement": 10_000.0}
GRID = 1_000
RFM_FEATURES = ("recency_days", "frequency", "monetary")
# Spread of centroids (in unit space, about the DP noise) below which a feature is not taken as separating
# segments when naming them: names come from what differs between segments.
NAME_SCALE_FLOOR = 0.1


def unit_model() -> dict:
    return {"space": "unit", "features": list(FEATURES),
            "log_upper": [float(np.log1p(UPPER[name])) for name in FEATURES]}


def to_unit(raw: np.ndarray, model: dict) -> np.ndarray:
    values = np.log1p(np.maximum(np.asarray(raw, dtype=float), 0.0)) / np.asarray(model["log_upper"])
    return np.clip(values, 0.0, 1.0)


def to_grid(raw: np.ndarray, model: dict) -> np.ndarray:
    return np.rint(to_unit(raw, model) * GRID).astype(np.int64)


def from_unit(value: float, name: str) -> float:
    """A unit-space coordinate back in the feature's own units."""
    return float(np.expm1(value * np.log1p(UPPER[name])))


# A public prior for where segments differ: along customer value (recent, frequent, big
# spenders of long standing, engaged) and across it; starting centroids spread on it.
VALUE_AXIS = np.asarray([-1.0, 1.0, 1.0, 0.5, 0.5]) / np.linalg.norm([-1.0, 1.0, 1.0, 0.5, 0.5])
START_SPREAD = 0.15


def initial_centroids(k: int, *, centre: np.ndarray, seed: int) -> np.ndarray:
    """Starting centroids around `centre` (a released mean: the only data they depend on),
    spread along VALUE_AXIS and jittered by the seed."""
    rng = np.random.default_rng(seed)
    steps = np.linspace(-1.0, 1.0, k)[:, None] * START_SPREAD * VALUE_AXIS[None, :]
    return np.clip(np.asarray(centre)[None, :] + steps + rng.uniform(-0.02, 0.02, size=steps.shape), 0.0, 1.0)


def nearest(points: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    distances = ((points[:, None, :] - np.asarray(centroids)[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def describe(model: dict) -> tuple[dict, list[str], list[dict]]:
    """A private fit's segments in value order (highest spend, then frequency, first), their
    archetype names and centroids in original units: post-processing of its noisy centroids."""
    centroids = np.asarray(model["centroids"])
    j_money, j_freq = FEATURES.index("monetary"), FEATURES.index("frequency")
    order = sorted(range(len(centroids)), key=lambda s: (-centroids[s, j_money], -centroids[s, j_freq], s))
    centroids = centroids[order]
    counts = np.maximum(np.asarray(model.get("noisy_counts") or [1.0] * len(order), dtype=float)[order], 1.0)
    centre = (centroids * counts[:, None]).sum(axis=0) / counts.sum()
    spread = np.sqrt(((centroids - centre) ** 2 * counts[:, None]).sum(axis=0) / counts.sum())
    standardized = (centroids - centre) / np.maximum(spread, NAME_SCALE_FLOOR)
    described = {**model, "centroids": centroids.tolist()}
    if "noisy_counts" in model:
        described["noisy_counts"] = [model["noisy_counts"][s] for s in order]
    means = [{name: round(from_unit(c[j], name), 4) for j, name in enumerate(FEATURES)} for c in centroids]
    return described, segment_names(standardized), means


class NotEnoughData(ValueError):
    """Too few distinct profiles to segment."""


@dataclass
class SegmentationResult:
    k: int
    silhouette: float
    davies_bouldin: float
    labels: np.ndarray
    sizes: list[int]
    names: list[str]
    centroids: list[dict]          # per segment: feature means in original units
    k_scores: dict[int, float]
    silhouette_sample: int
    model: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "k": self.k, "silhouette": self.silhouette, "davies_bouldin": self.davies_bouldin,
            "sizes": self.sizes,
            "segments": [{"name": n, "size": s, "centroid": c}
                         for n, s, c in zip(self.names, self.sizes, self.centroids)],
        }


def transform(raw: np.ndarray, model: dict) -> np.ndarray:
    """Raw features → the standardized space the centroids live in."""
    values = np.asarray(raw, dtype=float).copy()
    for j, name in enumerate(model["features"]):
        if name in model["log"]:
            values[:, j] = np.log1p(np.maximum(values[:, j], 0.0))
    return (values - np.asarray(model["mean"])) / np.asarray(model["scale"])


def assign(raw: np.ndarray, model: dict) -> np.ndarray:
    """Nearest centroid for each row (what KMeans.predict does), in the model's own space."""
    if model.get("space") == "unit":
        return nearest(to_unit(raw, model), model["centroids"])
    scaled = transform(raw, model)
    centroids = np.asarray(model["centroids"])
    distances = ((scaled[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1)


def rfm_scores(raw: np.ndarray, model: dict) -> np.ndarray:
    """RFM quintile scores 1..5 (5 best: most recent, most frequent, highest spend)."""
    cuts = model["rfm_cuts"]
    columns = {name: j for j, name in enumerate(model["features"])}
    r = 6 - _quintile(raw[:, columns["recency_days"]], cuts["recency_days"])
    f = _quintile(raw[:, columns["frequency"]], cuts["frequency"])
    m = _quintile(raw[:, columns["monetary"]], cuts["monetary"])
    return np.stack([r, f, m], axis=1)


def _quintile(values: np.ndarray, cuts: list[float]) -> np.ndarray:
    return 1 + np.searchsorted(np.asarray(cuts), values, side="left")


def fit(raw: np.ndarray, *, seed: int = 42, k_range: tuple[int, int] = K_RANGE,
        silhouette_sample: int = SILHOUETTE_SAMPLE, selection_sample: int = SELECTION_SAMPLE,
        n_init: int = 4) -> SegmentationResult:
    """Fit K-Means for every k in the range; keep the k with the best silhouette.

    For large populations k is chosen on a random sample (K-Means per k on at most
    `selection_sample` profiles, silhouette on at most `silhouette_sample` of them), then
    the chosen k is refitted on everyone, starting from the sample's centroids.
    """
    raw = np.asarray(raw, dtype=float)
    n = raw.shape[0]
    if n < MIN_POPULATION or len(np.unique(raw, axis=0)) < k_range[0] + 1:
        raise NotEnoughData(f"Segmentation needs at least {MIN_POPULATION} distinct profiles.")
    model = _scaler(raw)
    scaled = transform(raw, model)
    rng = np.random.default_rng(seed)
    selection = np.sort(rng.choice(n, size=selection_sample, replace=False)) if n > selection_sample else np.arange(n)
    # The silhouette points are a subset of the selection, so they have labels for every k.
    within = np.sort(rng.choice(len(selection), size=silhouette_sample, replace=False)) \
        if len(selection) > silhouette_sample else np.arange(len(selection))
    points = selection[within]
    # One distance matrix serves every k: silhouette is O(n²) and this is the n² part.
    distances = pairwise_distances(scaled[points]).astype(np.float32)
    distinct = len(np.unique(np.round(scaled[selection], 9), axis=0))
    best = None
    k_scores: dict[int, float] = {}
    with threadpool_limits(limits=1):  # small dense problems: threads cost more than they save
        for k in range(k_range[0], min(k_range[1], distinct - 1, len(ARCHETYPES)) + 1):
            labels, centroids = _kmeans(scaled[selection], k, seed=seed, n_init=n_init)
            if len(np.unique(labels[within])) < 2:
                continue
            score = silhouette(distances, labels[within])
            k_scores[k] = round(score, 6)
            if best is None or score > best[0] + 1e-12:
                best = (score, k, labels, centroids)
        if best is None:
            raise NotEnoughData("The profiles are too alike to split into segments.")
        score, k, labels, centroids = best
        if len(selection) < n:
            labels, centroids = _kmeans(scaled, k, seed=seed, n_init=1, init=centroids)
            score = silhouette(distances, labels[points])
    labels, centroids = _order_by_value(raw, labels, centroids)
    model["centroids"] = centroids.tolist()
    model["rfm_cuts"] = {name: np.quantile(raw[:, FEATURES.index(name)], [0.2, 0.4, 0.6, 0.8]).tolist()
                         for name in ("recency_days", "frequency", "monetary")}
    sizes = np.bincount(labels, minlength=k).tolist()
    means = [{name: round(float(raw[labels == s, j].mean()), 4) for j, name in enumerate(FEATURES)}
             for s in range(k)]
    return SegmentationResult(
        k=k, silhouette=round(score, 6), davies_bouldin=round(float(davies_bouldin_score(scaled, labels)), 6),
        labels=labels, sizes=sizes, names=segment_names(centroids), centroids=means, k_scores=k_scores,
        silhouette_sample=len(points), model=model,
    )


def silhouette(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette from a precomputed distance matrix (sklearn's definition: a point
    alone in its cluster scores 0), with one matrix product per k."""
    n = len(labels)
    k = int(labels.max()) + 1
    onehot = np.zeros((n, k), dtype=np.float32)
    onehot[np.arange(n), labels] = 1.0
    sums = (distances @ onehot).astype(np.float64)
    counts = onehot.sum(axis=0).astype(np.float64)
    own = counts[labels]
    a = sums[np.arange(n), labels] / np.maximum(own - 1, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(counts > 0, sums / counts, np.inf)
    means[np.arange(n), labels] = np.inf
    b = means.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where(own > 1, (b - a) / np.maximum(a, b), 0.0)
    return float(np.nan_to_num(values).mean())


def _scaler(raw: np.ndarray) -> dict:
    model = {"features": list(FEATURES), "log": sorted(LOG_FEATURES)}
    logged = raw.copy()
    for j, name in enumerate(FEATURES):
        if name in LOG_FEATURES:
            logged[:, j] = np.log1p(np.maximum(logged[:, j], 0.0))
    scale = logged.std(axis=0)
    # A constant column (no purchases at all, as in MovieLens) carries no information:
    # scale 1 keeps it at zero instead of dividing by zero.
    scale[scale < 1e-12] = 1.0
    model["mean"] = logged.mean(axis=0).tolist()
    model["scale"] = scale.tolist()
    return model


def _kmeans(scaled: np.ndarray, k: int, *, seed: int, n_init: int, init=None) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        # Many identical rows (one-off buyers) make some inits converge early: harmless.
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, n_init=n_init, random_state=seed,
                    init="k-means++" if init is None else init).fit(scaled)
    return km.labels_.astype(np.int64), km.cluster_centers_


def _order_by_value(raw: np.ndarray, labels: np.ndarray, centroids: np.ndarray):
    """Index 0 = highest mean spend, then frequency: stable, meaningful segment order."""
    k = len(centroids)
    keys = [(-raw[labels == s, 2].mean(), -raw[labels == s, 1].mean(), s) for s in range(k)]
    order = [s for *_, s in sorted(keys)]
    remap = np.empty(k, dtype=np.int64)
    remap[order] = np.arange(k)
    return remap[labels], centroids[order]


def segment_names(centroids: np.ndarray) -> list[str]:
    """One archetype name per centroid, nearest first, never the same name twice."""
    names = list(ARCHETYPES)
    targets = np.asarray([ARCHETYPES[n] for n in names])
    clipped = np.clip(np.asarray(centroids), -2.5, 2.5)
    cost = ((clipped[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    chosen = dict(zip(rows, cols))
    return [names[chosen[i]] for i in range(len(centroids))]


# k is chosen among useful sizes only: two segments rarely tell a marketer anything.
MIN_USEFUL_K = 3
# A k whose segments come back this alike (adjusted Rand index) on other samples of the
# customers is stable enough to act on.
STABLE_ARI = 0.75
SUBSAMPLE = 0.8


def standardized(raw: np.ndarray) -> np.ndarray:
    """The non-private fit's space (logs, standardized by the data's own mean and deviation)."""
    return transform(raw, _scaler(np.asarray(raw, dtype=float)))


def resampled_stability(raw: np.ndarray, k: int, seeds: list[int], *, fraction: float = SUBSAMPLE,
                        n_init: int = 4) -> float:
    """Mean adjusted Rand index, over seeds, between K-Means fits on two random subsamples of
    the customers (each `fraction` of them), compared on the customers both samples hold.

    Resampling the people, not just the seed, is what tells whether the segments are a
    property of the population or of the particular customers fitted.
    """
    scaled = standardized(raw)
    n = len(scaled)
    size = max(k + 1, int(fraction * n))
    scores = []
    with threadpool_limits(limits=1):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            first, second = (np.sort(rng.choice(n, size=size, replace=False)) for _ in range(2))
            both = np.intersect1d(first, second)
            labels = []
            for sample, offset in ((first, 0), (second, 1)):
                _, centroids = _kmeans(scaled[sample], k, seed=seed + offset, n_init=n_init)
                labels.append(nearest(scaled[both], centroids))
            scores.append(adjusted_rand_score(labels[0], labels[1]))
    return round(float(np.mean(scores)), 6)


@dataclass
class KChoice:
    k: int
    by_k: dict[int, dict]   # k → {"silhouette", "stability_ari"}
    rule: str


def choose_k(raw: np.ndarray, seeds: list[int], *, k_range: tuple[int, int] = (MIN_USEFUL_K, K_RANGE[1]),
             **options) -> KChoice:
    """k by stability and silhouette together: among useful k (≥ MIN_USEFUL_K) whose
    resampled stability reaches STABLE_ARI, the best silhouette; if none is stable, the
    most stable k."""
    scores = fit(raw, seed=seeds[0], k_range=k_range, **options).k_scores
    by_k = {k: {"silhouette": score, "stability_ari": resampled_stability(raw, k, seeds)}
            for k, score in scores.items()}
    stable = [k for k, v in by_k.items() if v["stability_ari"] >= STABLE_ARI]
    if stable:
        k = max(stable, key=lambda c: (by_k[c]["silhouette"], -c))
        rule = f"best silhouette among k ≥ {k_range[0]} with resampled stability ≥ {STABLE_ARI}"
    else:
        k = max(by_k, key=lambda c: (by_k[c]["stability_ari"], -c))
        rule = f"no k ≥ {k_range[0]} reached stability {STABLE_ARI}: the most stable k"
    return KChoice(k, by_k, rule)


def rfm_profile(raw: np.ndarray, labels: np.ndarray, k: int) -> list[dict]:
    """Per segment: its share of the customers and the mean and median recency (days),
    frequency (orders) and monetary value (spend)."""
    raw = np.asarray(raw, dtype=float)
    profiles = []
    for s in range(k):
        members = raw[labels == s]
        profile = {"share": round(len(members) / max(len(raw), 1), 4)}
        for name in RFM_FEATURES:
            column = members[:, FEATURES.index(name)] if len(members) else np.zeros(1)
            profile[name] = {"mean": round(float(column.mean()), 2), "median": round(float(np.median(column)), 2)}
        profiles.append(profile)
    return profiles
