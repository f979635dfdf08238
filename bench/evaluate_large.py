"""How long does `evaluate_recommender` take on a ~10,000-item MovieLens? Beside ml-100k, same run.

    python bench/evaluate_large.py [--seeds 42,1,2,3,4] [--only large|100k] [--data DIR] [--profile FILE]

Issue 16's target: the five-seed evaluation of a ~10,000-item MovieLens (ml-latest-small's
shape: 610 people, 9,724 rated movies, 100,836 ratings) in under 20 minutes on this machine,
ml-100k's in under 10. ml-latest-small is not in ../shared/data, so the bench writes a
synthetic one in its csv layout (ratings.csv, movies.csv) with ml-100k's shapes scaled up:
item popularity follows ml-100k's sorted popularity curve stretched over 9,724 items, people's
activity is drawn from ml-100k's per-person counts (scaled to 100,836 ratings in all), the
rating values from ml-100k's rating mix, each movie gets one to three of ml-100k's genres.
Then it runs the evaluation (exactly what the command runs, one BLAS thread) on it and on
ml-100k, printing per model and per phase (search, final fit) the seconds of each, and the
wall time of both data sets: the ml-100k figure is the reference measured under the same load.
"""

from __future__ import annotations

import argparse
import cProfile
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ML100K = ROOT.parent / "shared" / "data" / "movielens-100k"
USERS, ITEMS, RATINGS = 610, 9724, 100_836
TOP_SHARE = 329 / 100_836
TAIL = 0.15
GENRES = ("Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western")


def write_large(directory: Path, *, reference: Path = ML100K, seed: int = 0) -> Path:
    """A synthetic ml-latest-small (csv layout) whose shapes are ml-100k's, scaled up."""
    rng = np.random.default_rng(seed)
    data = np.loadtxt(reference / "u.data", dtype=np.int64)
    users, items, ratings = data[:, 0], data[:, 1], data[:, 2]
    # Popularity: ml-100k's sorted curve as a function of the rank's quantile, over ITEMS ranks.
    curve = np.sort(np.bincount(items)[1:])[::-1].astype(np.float64)
    quantiles = (np.arange(ITEMS) + 0.5) / ITEMS
    stretched = np.interp(quantiles, (np.arange(curve.size) + 0.5) / curve.size, curve) + 0.5
    # Sharpened until the most popular movie has ml-latest-small's share (329 of 100,836 ratings):
    # a 10k catalogue has a longer tail than ml-100k's 1,682 movies, not a flatter head.
    low, high = 1.0, 4.0
    for _ in range(40):
        gamma = (low + high) / 2
        share = stretched.max() ** gamma / (stretched ** gamma).sum()
        low, high = (gamma, high) if share * (1 - TAIL) < TOP_SHARE else (low, gamma)
    # Plus a flat share, for ml-latest-small's long tail of movies rated once or twice.
    popularity = (1 - TAIL) * stretched ** gamma / (stretched ** gamma).sum() + TAIL / ITEMS
    popularity = rng.permutation(popularity / popularity.sum())
    activity = rng.choice(np.bincount(users)[1:], USERS).astype(np.float64)
    activity = np.maximum(np.round(activity * RATINGS / activity.sum()), 20).astype(np.int64)
    values, counts = np.unique(ratings, return_counts=True)
    half_stars = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0])
    mix = np.interp(half_stars, values, counts / counts.sum())
    mix /= mix.sum()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "ratings.csv", "w") as out:
        out.write("userId,movieId,rating,timestamp\n")
        for user in range(USERS):
            chosen = rng.choice(ITEMS, size=min(int(activity[user]), ITEMS // 2), replace=False, p=popularity)
            stars = rng.choice(half_stars, size=chosen.size, p=mix)
            out.writelines(f"{user + 1},{item + 1},{star:g},{964982703 + i}\n"
                           for i, (item, star) in enumerate(zip(chosen, stars)))
    with open(directory / "movies.csv", "w") as out:
        out.write("movieId,title,genres\n")
        for item in range(ITEMS):
            genres = rng.choice(GENRES, size=int(rng.integers(1, 4)), replace=False)
            out.write(f'{item + 1},"Movie {item + 1} ({1930 + item % 90})",{"|".join(genres)}\n')
    return directory


def run(name: str, path: Path, seeds: list[int], profile: str | None) -> tuple[float, dict]:
    from personalization.recommender.evaluation import evaluate_movielens

    started = time.perf_counter()
    last = [started]

    def step(description: str) -> None:
        now = time.perf_counter()
        print(f"  {name}: {now - last[0]:6.1f} s before '{description}'", file=sys.stderr, flush=True)
        last[0] = now

    profiler = cProfile.Profile() if profile else None
    with threadpool_limits(limits=1, user_api="blas"):
        if profiler:
            profiler.enable()
        result = evaluate_movielens(path, seeds=seeds, progress=step)
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
    return time.perf_counter() - started, result


def report(name: str, seconds: float, result: dict) -> None:
    data = result["data"]
    print(f"{name}: {data['users']} people, {data['items']} items, {data['ratings']} ratings; "
          f"{len(result['seeds'])} seeds in {seconds:.1f} s ({seconds / 60:.1f} min)")
    for model, summary in result["models"].items():
        seeds = len(result["seeds"])
        print(f"  {model:>12}: ndcg@10 {summary['mean']['ndcg@10']:.4f}  "
              f"search {summary['search_seconds'] * seeds:7.1f} s"
              f"  final fit {summary['fit_seconds'] * seeds:6.1f} s (all seeds)  params {summary['params']}")


def main() -> None:
    import os

    import django

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="42,1,2,3,4")
    parser.add_argument("--only", choices=["large", "100k"])
    parser.add_argument("--data", type=Path, help="an existing ~10k-item MovieLens directory (default: synthetic)")
    parser.add_argument("--profile", help="write cProfile stats of the large run to this file")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("TESSERA_VAR_DIR", tempfile.mkdtemp())
    django.setup()
    seeds = [int(s) for s in args.seeds.split(",")]
    figures = []
    if args.only != "100k":
        path = args.data or write_large(Path(tempfile.mkdtemp()) / "ml-synthetic-10k")
        figures.append(("~10k items", *run("large", path, seeds, args.profile)))
    if args.only != "large":
        figures.append(("ml-100k", *run("100k", ML100K, seeds, None)))
    for name, seconds, result in figures:
        report(name, seconds, result)


if __name__ == "__main__":
    main()
