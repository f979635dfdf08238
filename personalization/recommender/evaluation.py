"""Offline evaluation: MovieLens loading and the whole `evaluate_recommender` run.

Protocol (protocol.py): ratings ≥ 4 are positives; a per-person 80/20 split of positives with
each seed; every person with a held-out positive is evaluated. Candidates follow the production
rule (exclusion.py): everything in the person's history and everything they consumed is left
out. What they consumed is what production would know at serving time: their training
positives and their ratings below 4 outside a held-out fifth. Those low ratings are split like
the positives (same seed, same 80/20 rule), because the held-out positives stand for the future:
excluding every low rating would also drop the future's disliked items from the candidates,
knowledge no production system has. The document also gives NDCG@K under the rule of earlier
versions of this evaluation: every model learns from training positives only and only those
are excluded (Tessera: its chosen configuration refitted on them).

Like for like: every model except popularity is tuned by the same coordinate search (search.py)
on the same validation split carved out of each seed's training data, with the same budget of
configurations, then fitted on all of the seed's training data. "tessera" is `fit_tuned`, the
function the pipeline serves (tuning.py), given what the pipeline would learn from: the ratings
the person has when scored, weighted as production weighs rating events (feedback.py; the
baselines get the contract's binary matrix of training positives). Its validation split holds
out the same positives as the baselines' (search.validation_split, `relevant_min`). The
ablation refits its chosen configuration with one part switched on at a time; `same_input`
reports EASE tuned and fitted on Tessera's own input, to show how much of the lead is the input.
Baselines: baselines.py. Beyond-accuracy figures come from
beyond_accuracy.py; ILD is the Jaccard dissimilarity of the items' genre sets.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from cdp.importers.movielens import Item, Rating, read_items, read_ratings
from personalization.recommender import beyond_accuracy
from personalization.recommender.baselines import BASELINES, Ease
from personalization.recommender.config import PARTS, RecommenderConfig
from personalization.recommender.exclusion import consumed_outside
from personalization.recommender.feedback import RELEVANT_WEIGHT, rating_weight
from personalization.recommender.hybrid import HybridRecommender
from personalization.recommender.protocol import Split, ndcg_at, ranking_metrics, split_per_user
from personalization.recommender.report import paired, summarise
from personalization.recommender.search import SEARCH_BUDGET, coordinate_search, validation_split
from personalization.recommender.tuning import SEARCH_SPACE, fit_tuned

POSITIVE_RATING = 4.0
RECALL_LONG = 20

Progress = Callable[[str], None]


class EvaluationError(ValueError):
    """The data cannot be evaluated; the message is one plain sentence."""


@dataclass
class RatingsData:
    name: str
    positives: sparse.csr_matrix     # people × items, 1 where the rating is ≥ 4
    rated: sparse.csr_matrix         # people × items, the best rating where there is one (what was consumed)
    user_ids: list[str]
    item_ids: list[str]
    item_titles: list[str]
    item_texts: list[str]
    item_categories: list[str]
    item_genres: list[list[str]]

    def genre_features(self) -> sparse.csr_matrix:
        names = sorted({g for genres in self.item_genres for g in genres})
        column = {name: j for j, name in enumerate(names)}
        rows = [i for i, genres in enumerate(self.item_genres) for _ in genres]
        cols = [column[g] for genres in self.item_genres for g in genres]
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(self.item_genres), len(names)))


def load_movielens(path: str | Path) -> RatingsData:
    """Positives (rating ≥ 4) and all ratings of a MovieLens directory; every catalogue item is a column.

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
    user_ids = sorted({user for (user, _), value in best.items() if value >= POSITIVE_RATING},
                      key=lambda u: (len(u), u))  # numeric order for digits
    row = {user: i for i, user in enumerate(user_ids)}
    shape = (len(user_ids), len(items))

    def matrix(pairs: list[tuple[str, int]], values: bool = False) -> sparse.csr_matrix:
        rows = np.fromiter((row[user] for user, _ in pairs), dtype=np.int64, count=len(pairs))
        cols = np.fromiter((j for _, j in pairs), dtype=np.int64, count=len(pairs))
        data = [best[pair] for pair in pairs] if values else np.ones(len(pairs))
        result = sparse.csr_matrix((data, (rows, cols)), shape=shape)
        result.sort_indices()
        return result

    return RatingsData(
        name=Path(path).resolve().name,
        positives=matrix([key for key, value in best.items() if value >= POSITIVE_RATING]),
        rated=matrix([key for key in best if key[0] in row], values=True),
        user_ids=user_ids,
        item_ids=[item.id for item in items],
        item_titles=[item.title for item in items],
        item_texts=[f"{item.title}. {item.description}" for item in items],
        item_categories=[item.category for item in items],
        item_genres=[list(item.attributes.get("genres") or []) for item in items],
    )


def ablation_config(config: RecommenderConfig, part: str) -> RecommenderConfig:
    """The tuned configuration with only `part` switched on (and no re-ranking)."""
    weights = {f"{name}_weight": 0.0 for name in ("cf", "content", "popularity")}
    weights[{"collaborative": "cf", "content": "content", "popularity": "popularity"}[part] + "_weight"] = 1.0
    return config.replace(exposure_capacity=0.0, **weights)


def evaluate_movielens(path: str | Path, *, seeds: Sequence[int], k: int = 10, budget: int = SEARCH_BUDGET,
                       progress: Progress | None = None) -> dict:
    """The `evaluate_recommender` JSON document (see CONTRACT.md)."""
    data = load_movielens(path)
    if data.positives.nnz == 0:
        raise EvaluationError(f"{path} has no ratings of {POSITIVE_RATING:g} or more to evaluate on.")
    return evaluate(data, seeds=seeds, k=k, budget=budget, progress=progress)


def consumed_at_serving(data: RatingsData, split: Split, seed: int) -> sparse.csr_matrix:
    """Training positives plus the training part (80/20 per person, like the positives) of the
    ratings below the positive threshold: what a person has consumed when they are scored."""
    low = consumed_outside(data.rated, data.positives)
    known = split.train + split_per_user(low, seed=seed).train
    known.data[:] = 1.0
    return sparse.csr_matrix(known)


def production_input(data: RatingsData, consumed: sparse.csr_matrix) -> sparse.csr_matrix:
    """What the pipeline would learn from for these people: each rating they have when scored,
    weighted as production weighs rating events (feedback.rating_weight)."""
    known = sparse.csr_matrix(data.rated.multiply(consumed))
    known.eliminate_zeros()
    known.data = rating_weight(known.data)
    return known


# EASE fitted on Tessera's input (production's weights, low ratings included): not a contract
# model, a check of how much of Tessera's lead is the input rather than the model.
EASE_SAME_INPUT = Ease("ease_on_tessera_input", weighted=True)
MODELS = ("tessera", *BASELINES)
STEPS_PER_SEED = len(MODELS) + len(PARTS) + 1


@dataclass
class _Seed:
    """One seed's data: the split, what is consumed, who is scored, the validation split."""

    seed: int
    split: Split
    consumed: sparse.csr_matrix
    users: list[int]
    k: int

    @property
    def length(self) -> int:
        return max(self.k, RECALL_LONG)


def evaluate(data: RatingsData, *, seeds: Sequence[int], k: int = 10, budget: int = SEARCH_BUDGET,
             progress: Progress | None = None, workers: int | None = None) -> dict:
    """`workers` processes evaluate the seeds side by side (default: one per core, at most one
    per seed). Each seed's figures depend only on its own seed, so the document is the same
    for any number of workers; only the timings differ."""
    step = progress or (lambda _: None)
    runs: dict[str, list[dict]] = {name: [] for name in MODELS}
    ablation: dict[str, list[dict]] = {part: [] for part in PARTS}
    only_training: dict[str, list[float]] = {name: [] for name in MODELS}
    same_input: list[dict] = []
    started = time.perf_counter()
    workers = min(len(seeds), workers if workers is not None else os.cpu_count() or 1)
    if workers <= 1:
        results = [_evaluate_seed(data, seed, k, budget, step) for seed in seeds]
    else:
        results = _evaluate_seeds_in_processes(data, seeds, k, budget, step, workers)
    for result in results:
        for name in MODELS:
            runs[name].append(result["runs"][name])
            only_training[name].append(result["only_training"][name])
        for part in PARTS:
            ablation[part].append(result["ablation"][part])
        same_input.append(result["same_input"])

    models = {name: summarise(per_seed, k) for name, per_seed in runs.items()}
    ndcg = f"ndcg@{k}"
    return {
        "dataset": data.name,
        "k": k,
        "seeds": list(seeds),
        "models": models,
        "paired": paired(runs, models, k),
        "ablation": {part: summarise(per_seed, k) for part, per_seed in ablation.items()},
        "same_input": {
            EASE_SAME_INPUT.name: summarise(same_input, k),
            "paired": paired({"tessera": runs["tessera"], EASE_SAME_INPUT.name: same_input},
                             {"tessera": models["tessera"], EASE_SAME_INPUT.name: summarise(same_input, k)}, k),
        },
        "protocol": {
            "positives": f"rating >= {POSITIVE_RATING:g}", "split": "per person 80/20 of positives",
            "exclusion": "training history and the training part (80/20) of the ratings below the threshold",
            "search": {"budget": budget, "validation": "per-person 80/20 of each seed's training data"},
            f"{ndcg} learning from and excluding training positives only": {
                name: round(float(np.mean(values)), 6) for name, values in only_training.items()},
        },
        "validation": {name: [run.get("validation_ndcg") for run in runs[name]] for name in MODELS},
        "data": {"users": int(data.positives.shape[0]), "items": int(data.positives.shape[1]),
                 "positives": int(data.positives.nnz), "ratings": int(data.rated.nnz)},
        "seconds": round(time.perf_counter() - started, 1),
    }


def _evaluate_seed(data: RatingsData, seed: int, k: int, budget: int, step: Progress) -> dict:
    """Every model's figures on one seed's split (STEPS_PER_SEED progress steps)."""
    split = split_per_user(data.positives, seed=seed)
    case = _Seed(seed, split, consumed_at_serving(data, split, seed), split.evaluated_users.tolist(), k)
    measure = _Measure(data, case, data.genre_features())
    runs: dict[str, dict] = {}
    only_training: dict[str, float] = {}
    ablation: dict[str, dict] = {}

    step(f"seed {seed}: tessera")
    inputs = production_input(data, case.consumed)
    begun = time.perf_counter()
    model, tuning = fit_tuned(inputs, data.item_texts, data.item_categories, None, seed=seed, k=k,
                              budget=budget, consumed=case.consumed)
    total = time.perf_counter() - begun
    exclude = case.consumed[case.users]
    runs["tessera"] = {
        **measure(model.rank(case.users, case.length, exclude=exclude)),
        "params": tuning.searched_params(SEARCH_SPACE), "fit_seconds": total - tuning.seconds,
        "search_seconds": tuning.seconds, "validation_ndcg": tuning.validation_ndcg,
        "model_version": model.model_version}
    # The earlier protocol: positives in, training positives out (the chosen configuration).
    on_positives = HybridRecommender(tuning.config).fit(split.train, data.item_texts, data.item_categories, None)
    only_training["tessera"] = measure.ndcg(on_positives.rank(case.users, k))
    for part in PARTS:
        step(f"seed {seed}: {part} alone")
        begun = time.perf_counter()
        alone = HybridRecommender(ablation_config(tuning.config, part)).fit(
            inputs, data.item_texts, data.item_categories, None)
        fit_seconds = time.perf_counter() - begun
        ablation[part] = {**measure(alone.rank(case.users, case.length, exclude=exclude)), "fit_seconds": fit_seconds}
    for name, baseline in BASELINES.items():
        step(f"seed {seed}: {name}")
        runs[name], only_training[name] = _baseline_run(baseline, split.train, case, measure, budget)
    step(f"seed {seed}: {EASE_SAME_INPUT.name}")
    same_input, _ = _baseline_run(EASE_SAME_INPUT, inputs, case, measure, budget, relevant_min=RELEVANT_WEIGHT)
    return {"runs": runs, "only_training": only_training, "ablation": ablation, "same_input": same_input}


def _seed_in_worker(data: RatingsData, seed: int, k: int, budget: int) -> dict:
    # One BLAS thread per worker, as the command sets for itself: the workers are the parallelism.
    with threadpool_limits(limits=1, user_api="blas"):
        return _evaluate_seed(data, seed, k, budget, lambda _: None)


def _evaluate_seeds_in_processes(data: RatingsData, seeds: Sequence[int], k: int, budget: int, step: Progress,
                                 workers: int) -> list[dict]:
    """The seeds in `workers` fresh processes ("spawn": implicit's OpenMP threads do not survive
    a fork), in seed order; progress counts a seed's steps when it finishes."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_seed_in_worker, data, seed, k, budget): seed for seed in seeds}
        for future in as_completed(futures):
            future.result()  # a failing seed fails the evaluation now
            for _ in range(STEPS_PER_SEED):
                step(f"seed {futures[future]}: done")
        return [future.result() for future in futures]


class _Measure:
    """Accuracy and beyond-accuracy figures of one seed's lists."""

    def __init__(self, data: RatingsData, case: _Seed, features: sparse.csr_matrix):
        self.case, self.features = case, features
        self.n_items = data.positives.shape[1]
        self.popularity = beyond_accuracy.item_popularity(case.split.train)

    def __call__(self, lists: list[list[int]]) -> dict:
        case, k = self.case, self.case.k
        at_k = [items[:k] for items in lists]
        result = {"seed": case.seed,
                  **ranking_metrics(at_k, case.split.test, case.users, k=k, n_items=self.n_items)}
        result.pop("coverage")
        long = ranking_metrics(lists, case.split.test, case.users, k=RECALL_LONG, n_items=self.n_items)
        result["recall@20"] = long["recall@20"]
        result.update(beyond_accuracy.metrics_at(at_k, k=k, n_items=self.n_items, popularity=self.popularity,
                                                 n_people=case.split.train.shape[0], features=self.features))
        return result

    def ndcg(self, lists: list[list[int]]) -> float:
        return ndcg_at(lists, self.case.split.test, self.case.users, k=self.case.k)


def _baseline_run(baseline, train: sparse.csr_matrix, case: _Seed, measure: _Measure, budget: int, *,
                  relevant_min: float | None = None) -> tuple[dict, float]:
    """Search on the validation split of `train`, fit the choice on all of it, measure."""
    validation = validation_split(train, seed=case.seed, consumed=case.consumed, relevant_min=relevant_min)
    cache: dict = {}

    def score(params: dict) -> float:
        if not len(validation.users):
            return 0.0
        lists = baseline.recommend(validation.train, params, validation.users, case.k, seed=case.seed,
                                   consumed=validation.consumed, cache=cache)
        return ndcg_at(lists, validation.test, validation.users, k=case.k)

    search = coordinate_search(baseline.start, baseline.space, score, budget=budget)
    begun = time.perf_counter()
    scorer = baseline.fit(train, search.params, seed=case.seed, cache={})
    fit_seconds = time.perf_counter() - begun
    lists = baseline.rank(scorer, train, case.users, case.length, consumed=case.consumed)
    training_only = baseline.rank(scorer, case.split.train, case.users, case.k)
    run = {**measure(lists), "params": search.params, "fit_seconds": fit_seconds,
           "search_seconds": search.seconds, "validation_ndcg": search.score if baseline.space else None}
    return run, measure.ndcg(training_only)
