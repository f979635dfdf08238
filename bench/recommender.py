"""Can the production recommender train on a 100,000-item catalogue on this machine? Time, peak memory, exactness.

    python bench/recommender.py [--items 100000] [--users 200000] [--per-user 40] [--threads 1]

Builds a synthetic shop (clustered tastes, Zipf-like item popularity, texts and categories
per cluster), fits `HybridRecommender` with the default configuration (what production and
`evaluate_recommender` start from), recommends for a sample of people and checks on every
recommendation that the parts add up to the score and the per-item contributions to the
collaborative and content parts (within 1e-6), and that removing a person's top
contributing item lowers that item's score by exactly its contribution.

Peak memory is the process's resident high-water mark (VmHWM), reset before each phase
through /proc/self/clear_refs where the kernel allows it. A dense item-item model of this
size (what exact EASE needs) would be items² × 8 bytes: 80 GB for 100,000 items.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import numpy as np  # noqa: E402
from scipy import sparse  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from personalization.recommender import HybridRecommender, RecommenderConfig  # noqa: E402

GiB = 2**30
TOLERANCE = 1e-6


def memory(field: str) -> int:
    """VmRSS or VmHWM of this process in bytes (0 where /proc is missing)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class Phase:
    def __init__(self, name: str, rows: list):
        self.name, self.rows = name, rows

    def __enter__(self):
        self.resettable = reset_peak()
        self.started, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        seconds, cpu = time.perf_counter() - self.started, time.process_time() - self.cpu
        self.rows.append((self.name, seconds, memory("VmHWM"), memory("VmRSS"), self.resettable, cpu))
        # CPU seconds next to wall seconds: on a shared machine the difference is other people's work.
        print(f"  {self.name:<38}{seconds:>8.1f} s wall {cpu:>8.1f} s CPU   peak {memory('VmHWM') / GiB:6.2f} GiB"
              f"   now {memory('VmRSS') / GiB:6.2f} GiB", flush=True)


def synthetic_shop(*, items: int, users: int, per_user: float, seed: int):
    """People × items purchases with clustered tastes; texts and categories follow the clusters."""
    rng = np.random.default_rng(seed)
    clusters = max(10, items // 200)
    cluster_of = rng.integers(0, clusters, size=items)
    order = np.argsort(cluster_of, kind="stable")
    # Zipf-like popularity: a few best-sellers per cluster, a long tail.
    popularity = 1.0 / (1.0 + rng.permutation(items)) ** 0.9
    cumulative = np.empty(items)
    offsets = np.searchsorted(cluster_of[order], np.arange(clusters + 1))
    for c in range(clusters):
        members = order[offsets[c]:offsets[c + 1]]
        weights = popularity[members]
        cumulative[offsets[c]:offsets[c + 1]] = c + np.cumsum(weights) / weights.sum()
    global_cdf = np.cumsum(popularity[order]) / popularity.sum()

    lengths = np.clip(rng.lognormal(np.log(per_user) - 0.5, 1.0, size=users).astype(int), 2, 2000)
    total = int(lengths.sum())
    user_of = np.repeat(np.arange(users), lengths)
    tastes = rng.integers(0, clusters, size=(users, 3))
    pick = tastes[user_of, rng.integers(0, 3, size=total)]
    position = np.searchsorted(cumulative, pick + rng.random(total) * (1 - 1e-12))
    in_taste = rng.random(total) < 0.8
    position[~in_taste] = np.searchsorted(global_cdf, rng.random((~in_taste).sum()) * (1 - 1e-12))
    item_of = order[np.minimum(position, items - 1)]
    interactions = sparse.csr_matrix((np.ones(total, dtype=np.float32), (user_of, item_of)), shape=(users, items))
    interactions.sum_duplicates()
    vocabulary = [f"w{n}" for n in range(5000)]
    texts = [f"Product {i} {vocabulary[(c * 7) % 5000]} {vocabulary[(c * 13 + 1) % 5000]} "
             f"{vocabulary[int(rng.integers(0, 5000))]} {vocabulary[int(rng.integers(0, 5000))]}"
             for i, c in enumerate(cluster_of)]
    categories = [f"category-{c % 100}" for c in cluster_of]
    segments = rng.integers(-1, 8, size=users)  # -1: no segment
    return interactions, texts, categories, segments


def check_explanations(model: HybridRecommender, people: np.ndarray, k: int) -> dict:
    lists = model.recommend(people, k)
    worst = {"parts": 0.0, "collaborative": 0.0, "content": 0.0, "attributes": 0.0}
    for recs in lists:
        for rec in recs:
            worst["parts"] = max(worst["parts"], abs(rec.score - sum(rec.parts.values())))
            if rec.fallback is None:
                worst["collaborative"] = max(worst["collaborative"], abs(
                    rec.parts["collaborative"] - sum(c for _, c in rec.contributing_items)))
                worst["content"] = max(worst["content"], abs(
                    rec.parts["content"] - sum(c for _, c in rec.content_items)))
                worst["attributes"] = max(worst["attributes"], abs(
                    rec.parts["content"] - sum(m.contribution for m in rec.matched_attributes)))
    # Counterfactual: without the top contributing item the score falls by exactly its contribution.
    drops = []
    for person, recs in list(zip(people, lists))[:50]:
        rec = next((r for r in recs if r.fallback is None and r.contributing_items), None)
        if rec is None:
            continue
        top_item, contribution = rec.contributing_items[0]
        content = dict(rec.content_items).get(top_item, 0.0)
        history = model.interactions[[person]].copy()
        history.data = np.expm1(history.data) if model.config.weight_transform == "log1p" else history.data
        history = history.tolil()
        history[0, top_item] = 0
        after = model.explain(None, rec.item, history=history.tocsr(), segment=model.user_segments[person])
        drops.append(abs((rec.score - after.score) - (contribution + content)))
        assert after.score < rec.score, "removing the top contributing item must lower the score"
    return {"lists": len(lists), "recommendations": sum(len(r) for r in lists), "worst": worst,
            "counterfactual_checks": len(drops), "counterfactual_worst": max(drops) if drops else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--per-user", type=float, default=40.0, help="mean history length")
    parser.add_argument("--sample", type=int, default=2000, help="people to recommend for")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS threads (1: a threaded BLAS on a busy machine is much slower)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    config = RecommenderConfig(seed=args.seed)
    print(f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GiB:.1f} "
          f"GiB RAM; BLAS threads {args.threads}; load average {os.getloadavg()[0]:.1f}")
    print(f"config: {config.to_dict()}")
    rows: list = []
    with threadpool_limits(limits=args.threads, user_api="blas"):
        with Phase("synthetic data", rows):
            interactions, texts, categories, segments = synthetic_shop(
                items=args.items, users=args.users, per_user=args.per_user, seed=args.seed)
        n_users, n_items = interactions.shape
        print(f"data: {n_users:,} people × {n_items:,} items, {interactions.nnz:,} interactions "
              f"({interactions.nnz / n_users:.1f} per person)")
        model = HybridRecommender(config)
        with Phase("fit (all parts)", rows):
            model.fit(interactions, texts, categories, segments)
        for piece, seconds in model.fit_seconds.items():
            print(f"    {piece:<32}{seconds:>9.1f} s")
        people = np.random.default_rng(args.seed).choice(n_users, min(args.sample, n_users), replace=False)
        with Phase(f"recommend + explain ({len(people):,} people)", rows):
            checked = check_explanations(model, people, args.k)

    weights, similarity = model.weights, model.content.similarity
    model_bytes = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes for m in (weights, similarity))
    fit_row = next(row for row in rows if row[0] == "fit (all parts)")
    print()
    print(f"item-item weights: {weights.nnz:,} non-zeros ({weights.nnz / n_items:.0f} per item); "
          f"content similarity: {similarity.nnz:,}; model {model_bytes / GiB:.2f} GiB "
          f"(a dense items² float64 matrix would be {n_items**2 * 8 / 1e9:.0f} GB)")
    print(f"fit: {fit_row[1]:.0f} s wall ({fit_row[5]:.0f} s CPU), peak resident memory {fit_row[2] / GiB:.2f} GiB"
          + ("" if fit_row[4] else " (process-wide peak: the kernel refused a reset)"))
    print(f"recommendations checked: {checked['recommendations']:,}; worst |score − Σ parts| "
          f"{checked['worst']['parts']:.1e}, |collaborative − Σ items| {checked['worst']['collaborative']:.1e}, "
          f"|content − Σ items| {checked['worst']['content']:.1e}, |content − Σ attributes| "
          f"{checked['worst']['attributes']:.1e}")
    print(f"counterfactual (top item removed): {checked['counterfactual_checks']} people, worst |drop − "
          f"contribution| {checked['counterfactual_worst']:.1e}")
    exact = max(checked["worst"].values()) <= TOLERANCE and checked["counterfactual_worst"] <= TOLERANCE
    print("explanations exact within 1e-6:", "yes" if exact else "NO")
    if not exact:
        sys.exit(1)


if __name__ == "__main__":
    main()
