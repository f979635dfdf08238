"""Offline evaluation: MovieLens loading, the baselines, and the whole `evaluate_recommender` run.

Protocol (protocol.py): ratings ≥ 4 are positives and the rest are dropped; a per-person
80/20 split of positives with each seed; every person with a held-out positive is evaluated
against all items minus their training positives.

"tessera" is exactly what production runs: `tune` on a validation split carved out of the
seed's training data, then `HybridRecommender(config).fit(...)` on all of it and
`.recommend(...)` — the same functions, arguments and defaults the pipeline uses. The
ablation refits the tuned configuration with one part switched on at a time.

Baselines: popularity (training positives per item); implicit's ALS in the reference
configuration (factors=64, iterations=15, regularization=0.05, alpha=1.0, binary weights,
random_state=seed, not tuned); EASE with λ=250 (dense closed form, Steck 2019).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from cdp.importers.movielens import Item, Rating, read_items, read_ratings
from personalization.recommender.config import PARTS, RecommenderConfig
from personalization.recommender.hybrid import HybridRecommender
from personalization.recommender.protocol import Split, ranking_metrics, split_per_user
from personalization.recommender.ranking import top_k
from personalization.recommender.tuning import tune

POSITIVE_RATING = 4.0
ALS_REFERENCE = {"factors": 64, "iterations": 15, "regularization": 0.05, "alpha": 1.0}
EASE_L2 = 250.0
# The dense EASE baseline needs a few n×n float64 matrices.
EASE_MAX_BYTES = 8 * 2**30

Progress = Callable[[str], None]


class EvaluationError(ValueError):
    """The data cannot be evaluated; the message is one plain sentence."""


@dataclass
class RatingsData:
    name: str
    positives: sparse.csr_matrix     # people × items, 1 where the rating is ≥ 4
    user_ids: list[str]
    item_ids: list[str]
    item_titles: list[str]
    item_texts: list[str]
    item_categories: list[str]


def load_movielens(path: str | Path) -> RatingsData:
    """Positives (rating ≥ 4) of a MovieLens directory; every catalogue item is a column.

    People without a positive have no row. Rows are in numeric user-id order, columns in
    the item file's order. A pair rated twice counts by its best rating.
    """
    items = [item for item in read_items(path) if isinstance(item, Item)]
    column = {item.id: j for j, item in enumerate(items)}
    best: dict[tuple[str, int], float] = {}
    for rating in read_ratings(path, known_item_ids=column.keys()):
        if isinstance(rating, Rating):
            key = (rating.user_id, column[rating.item_id])
            best[key] = max(best.get(key, rating.rating), rating.rating)
    positive = [(user, j) for (user, j), value in best.items() if value >= POSITIVE_RATING]
    user_ids = sorted({user for user, _ in positive}, key=lambda u: (len(u), u))  # numeric order for digits
    row = {user: i for i, user in enumerate(user_ids)}
    rows = np.fromiter((row[user] for user, _ in positive), dtype=np.int64, count=len(positive))
    cols = np.fromiter((j for _, j in positive), dtype=np.int64, count=len(positive))
    matrix = sparse.csr_matrix((np.ones(len(positive)), (rows, cols)), shape=(len(user_ids), len(items)))
    matrix.sort_indices()
    return RatingsData(
        name=Path(path).resolve().name,
        positives=matrix,
        user_ids=user_ids,
        item_ids=[item.id for item in items],
        item_titles=[item.title for item in items],
        item_texts=[f"{item.title}. {item.description}" for item in items],
        item_categories=[item.category for item in items],
    )


# -- baselines ---------------------------------------------------------------------------------


def _rank_dense(scores: np.ndarray, train: sparse.csr_matrix, users: Sequence[int], k: int) -> list[list[int]]:
    result = []
    for r, user in enumerate(users):
        allowed = np.ones(train.shape[1], dtype=bool)
        allowed[train.indices[train.indptr[user]:train.indptr[user + 1]]] = False
        result.append(top_k(scores[r], allowed, k).tolist())
    return result


def popularity_recommend(train: sparse.csr_matrix, users: Sequence[int], k: int, *,
                         seed: int = 0) -> tuple[list[list[int]], float]:
    """Training positives per item; `seed` is unused (no randomness)."""
    started = time.perf_counter()
    counts = np.diff(train.tocsc().indptr).astype(np.float64)
    fit_seconds = time.perf_counter() - started
    return [_rank_dense(counts[None, :], train, [user], k)[0] for user in users], fit_seconds


def ease_recommend(train: sparse.csr_matrix, users: Sequence[int], k: int, *, seed: int = 0,
                   l2: float = EASE_L2) -> tuple[list[list[int]], float]:
    """EASE's closed form on the binary matrix; `seed` is unused (deterministic)."""
    started = time.perf_counter()
    n_items = train.shape[1]
    if 3 * 8 * n_items**2 > EASE_MAX_BYTES:
        raise MemoryError(f"The dense EASE baseline needs {3 * 8 * n_items**2 / 2**30:.0f} GiB for "
                          f"{n_items} items; evaluate on a smaller catalogue.")
    X = sparse.csr_matrix(train, dtype=np.float64)
    X.data[:] = 1.0
    gram = (X.T @ X).toarray()
    gram[np.diag_indices(n_items)] += l2
    P = np.linalg.inv(gram)
    B = P / -np.diag(P)
    B[np.diag_indices(n_items)] = 0.0
    fit_seconds = time.perf_counter() - started
    scores = np.asarray(X[list(users)] @ B)
    return _rank_dense(scores, train, users, k), fit_seconds


def als_recommend(train: sparse.csr_matrix, users: Sequence[int], k: int, *,
                  seed: int) -> tuple[list[list[int]], float]:
    # implicit's own threads do the work; a threaded BLAS underneath would oversubscribe the cores.
    # Imported here: only this offline baseline needs implicit, which is slow to import.
    from implicit.cpu.als import AlternatingLeastSquares

    started = time.perf_counter()
    X = sparse.csr_matrix(train, dtype=np.float32)
    X.data[:] = 1.0
    with threadpool_limits(limits=1, user_api="blas"):
        model = AlternatingLeastSquares(random_state=seed, **ALS_REFERENCE)
        model.fit(X, show_progress=False)
    fit_seconds = time.perf_counter() - started
    user_factors = np.asarray(model.user_factors)[list(users)]
    scores = user_factors @ np.asarray(model.item_factors).T
    return _rank_dense(scores, train, users, k), fit_seconds


# -- the run -----------------------------------------------------------------------------------


def ablation_config(config: RecommenderConfig, part: str) -> RecommenderConfig:
    """The tuned configuration with only `part` switched on (and no re-ranking)."""
    weights = {f"{name}_weight": 0.0 for name in ("cf", "content", "popularity")}
    weights[{"collaborative": "cf", "content": "content", "popularity": "popularity"}[part] + "_weight"] = 1.0
    return config.replace(exposure_penalty=0.0, **weights)


def evaluate_movielens(path: str | Path, *, seeds: Sequence[int], k: int = 10,
                       progress: Progress | None = None) -> dict:
    """The `evaluate_recommender` JSON document (see CONTRACT.md)."""
    data = load_movielens(path)
    if data.positives.nnz == 0:
        raise EvaluationError(f"{path} has no ratings of {POSITIVE_RATING:g} or more to evaluate on.")
    return evaluate(data, seeds=seeds, k=k, progress=progress)


STEPS_PER_SEED = 5 + len(PARTS)


def evaluate(data: RatingsData, *, seeds: Sequence[int], k: int = 10, progress: Progress | None = None) -> dict:
    step = progress or (lambda _: None)
    runs: dict[str, list[dict]] = {name: [] for name in ("tessera", "popularity", "als", "ease")}
    ablation: dict[str, list[dict]] = {part: [] for part in PARTS}
    tuning = []
    n_items = data.positives.shape[1]
    for seed in seeds:
        split = split_per_user(data.positives, seed=seed)
        users = split.evaluated_users.tolist()

        step(f"seed {seed}: tuning")
        result = tune(split.train, data.item_texts, data.item_categories, None, seed=seed, k=k)
        tuning.append({"seed": seed, f"validation_ndcg@{k}": round(result.validation_ndcg, 6),
                       f"start_validation_ndcg@{k}": round(result.start_ndcg, 6),
                       "changes": _final_changes(result.config),
                       "trials": len(result.trials), "tune_seconds": round(result.seconds, 3),
                       "model_version": result.config.model_version})
        step(f"seed {seed}: tessera")
        runs["tessera"].append(_production_run(result.config, data, split, users, k, seed, n_items))
        for part in PARTS:
            step(f"seed {seed}: {part} alone")
            ablation[part].append(_production_run(ablation_config(result.config, part), data, split, users, k,
                                                  seed, n_items))
        for name, baseline in (("popularity", popularity_recommend), ("als", als_recommend),
                               ("ease", ease_recommend)):
            step(f"seed {seed}: {name}")
            recommended, fit_seconds = baseline(split.train, users, k, seed=seed)
            runs[name].append({"seed": seed, "fit_seconds": fit_seconds,
                               **ranking_metrics(recommended, split.test, users, k=k, n_items=n_items)})

    models = {name: _summarise(per_seed, k) for name, per_seed in runs.items()}
    for entry, run in zip(tuning, runs["tessera"]):
        entry["fit_seconds"] = round(run["fit_seconds"], 3)
    ndcg = f"ndcg@{k}"
    ours = [run[ndcg] for run in runs["tessera"]]
    beats = all(o > a and o > e for o, a, e in zip(ours, (r[ndcg] for r in runs["als"]),
                                                    (r[ndcg] for r in runs["ease"])))
    return {
        "dataset": data.name,
        "k": k,
        "seeds": list(seeds),
        "models": models,
        "ablation": {part: _summarise(per_seed, k) for part, per_seed in ablation.items()},
        "tuning": tuning,
        "summary": {ndcg: {name: model["mean"][ndcg] for name, model in models.items()},
                    "tessera_beats_als_and_ease_on_every_seed": beats},
        "data": {"users": int(data.positives.shape[0]), "items": n_items, "positives": int(data.positives.nnz)},
    }


def _production_run(config: RecommenderConfig, data: RatingsData, split: Split, users: list[int], k: int,
                    seed: int, n_items: int) -> dict:
    started = time.perf_counter()
    model = HybridRecommender(config).fit(split.train, data.item_texts, data.item_categories, None)
    fit_seconds = time.perf_counter() - started
    recommended = [[rec.item for rec in recs] for recs in model.recommend(users, k, exclude_seen=True)]
    return {"seed": seed, **ranking_metrics(recommended, split.test, users, k=k, n_items=n_items),
            "fit_seconds": fit_seconds}


def _final_changes(config: RecommenderConfig) -> dict:
    default = RecommenderConfig(seed=config.seed).to_dict()
    return {name: value for name, value in config.to_dict().items() if default[name] != value}


def _summarise(per_seed: list[dict], k: int) -> dict:
    names = [f"precision@{k}", f"recall@{k}", f"ndcg@{k}", f"map@{k}", "coverage"]
    return {
        "mean": {name: round(float(np.mean([run[name] for run in per_seed])), 6) for name in names},
        "per_seed": [{"seed": run["seed"], **{name: round(run[name], 6) for name in names}} for run in per_seed],
        "fit_seconds": round(float(np.mean([run["fit_seconds"] for run in per_seed])), 3),
    }
