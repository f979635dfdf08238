"""The accuracy / coverage / Gini trade-off of the capacity re-ranking's one knob, next to EASE.

    python bench/rerank_tradeoff.py [--path ../shared/data/movielens-100k] [--seeds 42,1,2,3,4]
                                    [--capacities 0,8,4,3,2,1.5] [--k 10] [--json]

evaluate_recommender's protocol (evaluation.py): ratings ≥ 4, per-person 80/20 split per
seed, every person with a held-out positive; the production exclusion rule (history and what
was consumed, exclusion.py). Per seed: EASE tuned by the shared search on the validation split
(as in the evaluation), Tessera as `fit_tuned` serves it ("chosen": the knob chosen on the
validation split, tuning.py) and the same tuned configuration at each `exposure_capacity`
C (0 = off), fitted on the same input through a FitCache (the knob changes only the prices).
Per point: NDCG@k, coverage@k, Gini of exposure@k, novelty@k, ILD@k (Jaccard of the u.item
genres), popularity miscalibration@k (beyond_accuracy.py), the NDCG and coverage gaps between
light, medium and heavy users (terciles of training-history size), means over seeds, and the
ratios to EASE measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402

from personalization.recommender import beyond_accuracy as ba  # noqa: E402
from personalization.recommender.baselines import BASELINES  # noqa: E402
from personalization.recommender.evaluation import (  # noqa: E402
    _baseline_run,
    _Measure,
    _Seed,
    consumed_at_serving,
    load_movielens,
    production_input,
)
from personalization.recommender.fit_cache import FitCache  # noqa: E402
from personalization.recommender.hybrid import HybridRecommender  # noqa: E402
from personalization.recommender.protocol import ranking_metrics, split_per_user  # noqa: E402
from personalization.recommender.search import SEARCH_BUDGET  # noqa: E402
from personalization.recommender.tuning import fit_tuned  # noqa: E402

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / "movielens-100k"


def genre_features(path: Path, item_ids: list[str]) -> sparse.csr_matrix | None:
    """Items × 19 genre flags from u.item (ml-100k layout), None for other layouts."""
    file = path / "u.item"
    if not file.exists():
        return None
    flags = {}
    for line in file.read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        if len(fields) >= 6:
            flags[fields[0]] = [int(f or 0) for f in fields[5:]]
    width = max(len(v) for v in flags.values())
    return sparse.csr_matrix(np.array([flags.get(i, [0] * width) for i in item_ids], dtype=float))


def activity_groups(split, users) -> list[str]:
    """Light / medium / heavy by training-history size (terciles): the per-segment gaps' groups."""
    sizes = np.diff(split.train.indptr)[users]
    low, high = np.quantile(sizes, [1 / 3, 2 / 3])
    return ["light" if s <= low else "heavy" if s > high else "medium" for s in sizes]


def point(lists, split, users, *, k, n_items, popularity, features) -> dict:
    histories = [split.train.indices[split.train.indptr[u]:split.train.indptr[u + 1]].tolist() for u in users]
    metrics = ranking_metrics(lists, split.test, users, k=k, n_items=n_items)
    groups = activity_groups(split, users)
    relevant = [set(split.test.indices[split.test.indptr[u]:split.test.indptr[u + 1]].tolist()) for u in users]
    ndcg_gap = ba.mean_by_segment(ba.ndcg_per_person(lists, relevant, k), groups)["gap"]
    return {f"ndcg@{k}": metrics[f"ndcg@{k}"], f"recall@{k}": metrics[f"recall@{k}"],
            **ba.metrics_at(lists, k=k, n_items=n_items, popularity=popularity, n_people=split.train.shape[0],
                            features=features, histories=histories),
            "ndcg_gap": ndcg_gap, "coverage_gap": ba.coverage_by_segment(lists, groups, n_items)["gap"]}


def run(path: Path, seeds: list[int], capacities: list[float], k: int, budget: int = SEARCH_BUDGET) -> dict:
    data = load_movielens(path)
    n_items = data.positives.shape[1]
    features = genre_features(path, data.item_ids)
    per_seed: dict[str, list[dict]] = {"ease": [], "chosen": [], **{str(c): [] for c in capacities}}
    for seed in seeds:
        split = split_per_user(data.positives, seed=seed)
        users = split.evaluated_users.tolist()
        consumed = consumed_at_serving(data, split, seed)
        exclude = consumed[users]
        popularity = ba.item_popularity(split.train)
        args = {"k": k, "n_items": n_items, "popularity": popularity, "features": features}
        ease = BASELINES["ease"]
        case = _Seed(seed, split, consumed, users, k)
        tuned, _ = _baseline_run(ease, split.train, case, _Measure(data, case, features), budget)
        lists = ease.recommend(split.train, tuned["params"], users, k, seed=seed, consumed=consumed)
        per_seed["ease"].append(point(lists, split, users, **args))
        inputs = production_input(data, consumed)
        model, tuning = fit_tuned(inputs, data.item_texts, data.item_categories, None, seed=seed, k=k,
                                  budget=budget, consumed=consumed)
        per_seed["chosen"].append({**point(model.rank(users, k, exclude=exclude), split, users, **args),
                                   "capacity": tuning.config.exposure_capacity})
        cache = FitCache()
        for capacity in capacities:
            fitted = HybridRecommender(tuning.config.replace(exposure_capacity=capacity)).fit(
                inputs, data.item_texts, data.item_categories, None, cache=cache)
            per_seed[str(capacity)].append(point(fitted.rank(users, k, exclude=exclude), split, users, **args))
        print(f"seed {seed} done (chosen C = {tuning.config.exposure_capacity})", file=sys.stderr, flush=True)
    means = {name: {metric: float(np.mean([p[metric] for p in points])) for metric in points[0]}
             for name, points in per_seed.items()}
    ease = means["ease"]
    for values in means.values():
        values["ndcg_vs_ease"] = values[f"ndcg@{k}"] / ease[f"ndcg@{k}"]
        values["coverage_vs_ease"] = values[f"coverage@{k}"] / ease[f"coverage@{k}"]
        values["gini_vs_ease"] = values[f"gini@{k}"] / ease[f"gini@{k}"]
    return {"dataset": data.name, "k": k, "seeds": seeds, "points": means,
            "chosen_capacities": [p["capacity"] for p in per_seed["chosen"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--seeds", default="42,1,2,3,4")
    parser.add_argument("--capacities", default="0,20,10,6,4,3,2")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    options = parser.parse_args()
    if not (options.path / "u.data").exists() and not (options.path / "ratings.csv").exists():
        sys.exit(f"No MovieLens data at {options.path}.")
    result = run(options.path, [int(s) for s in options.seeds.split(",")],
                 [float(c) for c in options.capacities.split(",")], options.k)
    if options.json:
        print(json.dumps(result, indent=2))
        return
    k = options.k
    print(f"{result['dataset']}, seeds {result['seeds']}, means; exposure_capacity chosen on the validation "
          f"splits: {result['chosen_capacities']}")
    columns = [f"ndcg@{k}", f"coverage@{k}", f"gini@{k}", f"novelty@{k}", f"ild@{k}", f"miscalibration@{k}",
               "ndcg_gap", "coverage_gap", "ndcg_vs_ease", "coverage_vs_ease", "gini_vs_ease"]
    print(f"{'model':>16} " + " ".join(f"{c:>17}" for c in columns))
    for name, values in result["points"].items():
        label = name if name in ("ease", "chosen") else f"tessera C={name}"
        print(f"{label:>16} " + " ".join(f"{values.get(c, float('nan')):>17.4f}" for c in columns))


if __name__ == "__main__":
    main()
