"""Segmentation of analytics-allowed profiles: one K-Means fit per run, memberships by chunk.

`segmentation_fit` reads the run's ProfileFeatures of people who still allow `analytics`
and writes a Segmentation with its Segments from a differentially private definition
(DP-Lloyd through personalization.privacy, charged to the budget): nothing about segments
is computed from exact figures, and no size or population is stored.
`segments_assign` writes SegmentMembership rows (segment + RFM quintile scores) for one
profile-id range, checking `analytics` again when it runs. Logs ids and counts only.
"""

from __future__ import annotations

import logging

import numpy as np
from django.db import transaction
from django.db.models import F, FloatField
from django.db.models.functions import Cast

from consent import policy
from personalization import privacy, segmentation
from personalization.db import rows_write
from personalization.errors import BudgetExceeded
from personalization.locks import derived_data_write_lock
from personalization.models import PipelineRun, ProfileFeatures, Segment, Segmentation, SegmentMembership, Stage
from personalization.services.pipeline import (
    pipeline_chunk_claim_write,
    pipeline_chunk_finish,
    pipeline_chunk_start,
    pipeline_counts_add,
    pipeline_warning_add,
)

logger = logging.getLogger(__name__)
PURPOSE = "analytics"
DEFAULT_K = 4


def features_matrix(*, run_id: int, profile_ids: list | None = None) -> tuple[list, np.ndarray]:
    """(profile ids, raw feature matrix in segmentation.FEATURES order) of the run."""
    queryset = ProfileFeatures.objects.filter(run_id=run_id)
    if profile_ids is not None:
        queryset = queryset.filter(profile_id__in_array=profile_ids)
    rows = list(queryset.order_by("profile_id").values_list(
        "profile_id", "recency_days", "frequency", Cast("monetary", FloatField()), "tenure_days",
        F("views") + F("carts") + F("ratings")))
    ids = [row[0] for row in rows]
    matrix = np.asarray([row[1:] for row in rows], dtype=float).reshape(len(rows), len(segmentation.FEATURES))
    return ids, matrix


def segmentation_fit(*, run_id: int) -> Segmentation | None:
    """The run's segmentation once; None when there are too few profiles to segment.

    Its definitions (centroids, RFM cut points) come from DP-Lloyd, paid for from the
    privacy budget; when the budget (or the month's pace) cannot pay, the newest released
    definition is reused, which costs nothing. Names and centroids are post-processing.
    """
    existing = Segmentation.objects.filter(run_id=run_id).first()
    if existing is not None:
        return existing
    params = PipelineRun.objects.values_list("params", flat=True).get(id=run_id)
    ids, matrix = features_matrix(run_id=run_id)
    still = policy.allowed(ids, PURPOSE)
    keep = np.fromiter((pid in still for pid in ids), dtype=bool, count=len(ids))
    matrix = matrix[keep]
    k = int(params.get("k", DEFAULT_K))
    if len(matrix) < segmentation.MIN_POPULATION:
        pipeline_warning_add(run_id=run_id, stage="segments_fit", code="not_enough_data",
                             message=f"Segmentation needs at least {segmentation.MIN_POPULATION} profiles.")
        return None
    try:
        definition = privacy.segment_definition_release(matrix=matrix, k=k, seed=params["seed"], run_id=run_id)
    except BudgetExceeded as refusal:
        definition = privacy.segment_definition_latest()
        if definition is None:
            pipeline_warning_add(run_id=run_id, stage="segments_fit", code=refusal.code, message=refusal.message)
            return None
        pipeline_warning_add(run_id=run_id, stage="segments_fit", code="segment_definition_reused",
                             message=f"{refusal.message} The newest released definition is used again.")
    model, names, centroids = segmentation.describe(definition.values)
    with transaction.atomic():
        seg = Segmentation.objects.create(run_id=run_id, k=len(names), definition=definition, seed=params["seed"],
                                          model=model)
        Segment.objects.bulk_create([Segment(segmentation=seg, index=i, name=name, centroid=centroid)
                                     for i, (name, centroid) in enumerate(zip(names, centroids))])
    pipeline_counts_add(run_id=run_id, segments=len(names))
    logger.info("segmentation_fitted", extra={"run_id": run_id, "k": len(names)})
    return seg


def segments_assign(*, run_id: int, chunk_index: int) -> int:
    """Memberships for one profile-id range; returns the number of profiles segmented."""
    chunk = pipeline_chunk_start(run_id=run_id, stage=Stage.SEGMENTS_ASSIGN, index=chunk_index)
    if chunk is None:
        return 0
    seg = Segmentation.objects.filter(run_id=run_id).first()
    ids = chunk.profile_ids()
    allowed = policy.allowed(ids, PURPOSE)
    memberships = membership_rows(seg, run_id=run_id, profile_ids=sorted(allowed)) if seg is not None else []
    with transaction.atomic():
        if not pipeline_chunk_claim_write(chunk):
            return 0
        derived_data_write_lock()
        still = policy.allowed([m[2] for m in memberships], PURPOSE)
        memberships = [m for m in memberships if m[2] in still]
        rows_write(SegmentMembership, MEMBERSHIP_FIELDS, memberships)
        pipeline_chunk_finish(chunk, count=len(memberships), skipped=len(ids) - len(allowed))
    return len(memberships)


MEMBERSHIP_FIELDS = ("segmentation_id", "segment_id", "profile_id", "r_score", "f_score", "m_score")


def membership_rows(seg: Segmentation, *, run_id: int, profile_ids: list) -> list[tuple]:
    """SegmentMembership rows (values in MEMBERSHIP_FIELDS order) of these people from the
    run's stored features: each goes to the nearest centroid of `seg`, with RFM quintile
    scores on its cut points. The pipeline's chunks and the real-time refresh
    (services/realtime.py) both write these."""
    if not profile_ids:
        return []
    featured, matrix = features_matrix(run_id=run_id, profile_ids=profile_ids)
    if not featured:
        return []
    labels = segmentation.assign(matrix, seg.model)
    scores = segmentation.rfm_scores(matrix, seg.model)
    segment_ids = dict(Segment.objects.filter(segmentation=seg).values_list("index", "id"))
    return [(seg.id, segment_ids[int(label)], pid, int(r), int(f), int(m))
            for pid, label, (r, f, m) in zip(featured, labels, scores)]
