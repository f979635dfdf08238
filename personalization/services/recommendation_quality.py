"""What a run's served lists do beyond accuracy, recorded on the run for /ops/.

At a run's finish (before its model drops the people it was fitted on), the lists it wrote
are measured with personalization.recommender.beyond_accuracy: catalogue coverage, Gini of
exposure, novelty, intra-list diversity (1 − Jaccard of catalogue categories), popularity
miscalibration (each person's current history against their list) and the coverage of each
segment's lists with the gap between segments. Segments with fewer than
`MIN_SEGMENT_PEOPLE` listed people are left out, so no figure describes a handful of people.
The pipeline holds out nothing, so there is no NDCG here (the offline evaluation measures
it); everything is an aggregate over lists, recorded in `PipelineRun.quality`. The /ops/
thresholds (settings TESSERA_QUALITY_*) are applied when the page is drawn.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from scipy import sparse

from cdp.models import Item
from personalization.models import PipelineArtifact, Recommendation
from personalization.recommender import beyond_accuracy as ba
from personalization.services.artifacts import ARTIFACT, artifact_load
from personalization.services.recommendations import _segment_of, histories_load

MIN_SEGMENT_PEOPLE = 10
METRICS = ("coverage", "gini", "novelty", "ild", "miscalibration")


def recommendations_quality(*, run_id: int) -> dict:
    """{"k", "coverage", "gini", "novelty", "ild", "miscalibration", "segment_coverage": {"gap",
    "by_segment"}} of the run's lists; {} when the run made none."""
    if not PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).exists():
        return {}
    artifact = artifact_load(run_id)
    if "item_popularity" not in artifact:
        return {}  # fitted before quality records
    item_ids = list(artifact["model"].item_ids)
    column = {item_id: j for j, item_id in enumerate(item_ids)}
    lists_of: dict = defaultdict(list)
    for profile_id, item_id in (Recommendation.objects.filter(run_id=run_id).order_by("profile_id", "rank")
                                .values_list("profile_id", "item_id")):
        if item_id in column:
            lists_of[profile_id].append(column[item_id])
    if not lists_of:
        return {}
    people = sorted(lists_of)
    lists = [lists_of[pid] for pid in people]
    k = max(len(items) for items in lists)
    history = histories_load(people, item_ids)
    histories = [history.indices[history.indptr[r]:history.indptr[r + 1]].tolist() for r in range(len(people))]
    popularity = np.asarray(artifact["item_popularity"], dtype=np.float64)
    result = {"k": k, **{name.split("@")[0]: round(value, 6) for name, value in ba.metrics_at(
        lists, k=k, n_items=len(item_ids), popularity=popularity, n_people=max(artifact["trained_people"], 1),
        features=_category_features(item_ids), histories=histories).items()}}
    segment_of = _segment_of(run_id, people)
    labels = [segment_of[pid]["name"] if pid in segment_of else None for pid in people]
    sizes = defaultdict(int)
    for label in labels:
        sizes[label] += 1
    labels = [label if label is not None and sizes[label] >= MIN_SEGMENT_PEOPLE else None for label in labels]
    gaps = ba.coverage_by_segment(lists, labels, len(item_ids))
    result["segment_coverage"] = {"gap": round(gaps["gap"], 6),
                                  "by_segment": {name: round(v, 6) for name, v in gaps["by_segment"].items()}}
    return result


def _category_features(item_ids: list[str]) -> sparse.csr_matrix:
    """Items × categories, one flag per item (its catalogue category)."""
    category = dict(Item.objects.filter(id__in=item_ids).values_list("id", "category"))
    names = {name: c for c, name in enumerate(sorted({v for v in category.values() if v}))}
    rows = [j for j, item_id in enumerate(item_ids) if category.get(item_id)]
    cols = [names[category[item_ids[j]]] for j in rows]
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(item_ids), max(len(names), 1)))


def quality_alerts(quality: dict, previous: dict | None, thresholds: dict) -> list[str]:
    """Plain sentences for what is out of bounds in a run's quality record. `thresholds`:
    min_coverage, max_gini, max_miscalibration, max_segment_gap, max_drift (relative change
    of a figure against the previous run's record)."""
    if not quality:
        return []
    alerts = []
    if quality["coverage"] < thresholds["min_coverage"]:
        alerts.append(f"Catalogue coverage {quality['coverage']:.3f} is below {thresholds['min_coverage']:.3f}.")
    if quality["gini"] > thresholds["max_gini"]:
        alerts.append(f"Gini of exposure {quality['gini']:.3f} is above {thresholds['max_gini']:.3f}.")
    if quality.get("miscalibration", 0.0) > thresholds["max_miscalibration"]:
        alerts.append(f"Popularity miscalibration {quality['miscalibration']:.3f} is above "
                      f"{thresholds['max_miscalibration']:.3f}.")
    gap = quality.get("segment_coverage", {}).get("gap", 0.0)
    if gap > thresholds["max_segment_gap"]:
        alerts.append(f"Coverage differs by {gap:.3f} between segments "
                      f"(more than {thresholds['max_segment_gap']:.3f}).")
    for name in METRICS:
        before, now = (previous or {}).get(name), quality.get(name)
        if before and now is not None and abs(now - before) / abs(before) > thresholds["max_drift"]:
            alerts.append(f"{LABELS[name]} moved from {before:.3f} to {now:.3f} since the previous run "
                          f"(more than {thresholds['max_drift']:.0%}).")
    return alerts


LABELS = {"coverage": "Catalogue coverage", "gini": "Gini of exposure", "novelty": "Novelty",
          "ild": "Intra-list diversity", "miscalibration": "Popularity miscalibration"}
