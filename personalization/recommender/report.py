"""Summaries of the evaluation: per-model means, the paired confidence interval, the best baseline.

`paired_difference` compares two models seed by seed: the mean of the per-seed differences
and a Student-t 95% interval over seeds (n − 1 degrees of freedom); with one seed there is
no interval (None, None).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def paired_difference(ours: Sequence[float], theirs: Sequence[float], *,
                      confidence: float = CONFIDENCE) -> dict[str, Any]:
    """{"mean_diff", "ci95": [lo, hi]} of ours − theirs, paired by position (seed)."""
    if len(ours) != len(theirs) or not len(ours):
        raise ValueError("Paired results need the same, non-zero number of seeds.")
    diffs = np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return {"mean_diff": mean, "ci95": [None, None]}
    half = float(stats.t.ppf(0.5 + confidence / 2, len(diffs) - 1) * diffs.std(ddof=1) / np.sqrt(len(diffs)))
    return {"mean_diff": mean, "ci95": [mean - half, mean + half]}


def metric_names(k: int) -> list[str]:
    names = [f"precision@{k}", f"recall@{k}", "recall@20", f"ndcg@{k}", f"map@{k}",
             f"coverage@{k}", f"gini@{k}", f"novelty@{k}", f"ild@{k}"]
    return list(dict.fromkeys(names))


def summarise(per_seed: list[dict], k: int) -> dict[str, Any]:
    """M of the contract: params (the value chosen most often over seeds), mean, per_seed, fit_seconds."""
    names = metric_names(k)
    chosen = [run.get("params", {}) for run in per_seed]
    params = {}
    for name in (chosen[0] if chosen else {}):
        counts = Counter(repr(c.get(name)) for c in chosen)
        top = max(counts.values())
        params[name] = next(c[name] for c in chosen if counts[repr(c.get(name))] == top)
    return {
        "params": params,
        "mean": {name: round(float(np.mean([run[name] for run in per_seed])), 6) for name in names},
        "per_seed": [{"seed": run["seed"], **{name: round(run[name], 6) for name in names},
                      **{extra: run[extra] for extra in ("params", "model_version") if extra in run}}
                     for run in per_seed],
        "fit_seconds": round(float(np.mean([run["fit_seconds"] for run in per_seed])), 3),
        "search_seconds": round(float(np.mean([run.get("search_seconds", 0.0) for run in per_seed])), 3),
    }


def best_baseline(models: dict[str, dict], k: int, *, ours: str = "tessera") -> str:
    """The baseline with the highest mean NDCG@k (ties: the first in name order)."""
    others = sorted(name for name in models if name != ours)
    return max(others, key=lambda name: (models[name]["mean"][f"ndcg@{k}"], -others.index(name)))


def paired(runs: dict[str, list[dict]], models: dict[str, dict], k: int, *, ours: str = "tessera") -> dict:
    """P of the contract: Tessera minus the best tuned baseline by mean NDCG@k, paired by seed."""
    baseline = best_baseline(models, k, ours=ours)
    ndcg = f"ndcg@{k}"
    difference = paired_difference([r[ndcg] for r in runs[ours]], [r[ndcg] for r in runs[baseline]])
    rounded = {"mean_diff": round(difference["mean_diff"], 6),
               "ci95": [None if v is None else round(v, 6) for v in difference["ci95"]]}
    return {"baseline": baseline, ndcg: rounded}
