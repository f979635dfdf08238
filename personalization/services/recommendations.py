"""Top-k recommendations for personalization-allowed profiles, with explanations.

`recommender_fit` reads the item interactions (event counts per person and item) of
active profiles that allow `personalization`, the catalogue's texts and attributes and
the run's segment memberships, fits the hybrid recommender (personalization.recommender)
and stores it as the run's artifact. `recommendations_compute` scores one profile-id
range, checking `personalization` again when it runs, excludes what each person already
bought, and writes Recommendation rows whose explanation names their own items, the
matched attributes, the segment, any fallback, the data sources and the purposes. Only
ids and counts are logged.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from scipy import sparse

from cdp.models import Event, EventType, Item
from consent import policy
from personalization.db import as_uuid, raw_rows, rows_write
from personalization.explanations import PersonContext, explanation_build, pinned_explanation
from personalization.locks import derived_data_write_lock
from personalization.models import (
    PipelineArtifact,
    PipelineChunk,
    PipelineRun,
    Recommendation,
    Segment,
    Segmentation,
    SegmentMembership,
    Stage,
)
from personalization.recommender.feedback import CART_WEIGHT, PURCHASE_WEIGHT, VIEW_WEIGHT, rating_weight
from personalization.services.artifacts import ARTIFACT, artifact_load, artifact_store
from personalization.services.oversight import overrides_in_force
from personalization.services.pipeline import (
    ChunkRange,
    pipeline_chunk_claim_write,
    pipeline_chunk_finish,
    pipeline_chunk_start,
    pipeline_chunks,
    pipeline_counts_add,
    pipeline_warning_add,
)
from personalization.services.recommender_adapter import HybridAdapter

logger = logging.getLogger(__name__)
PURPOSE = "personalization"

# Implicit feedback: how much each kind of event says about taste (personalization.recommender.feedback,
# which the offline evaluation uses too).
WEIGHTS = {EventType.VIEW: VIEW_WEIGHT, EventType.ADD_TO_CART: CART_WEIGHT, EventType.PURCHASE: PURCHASE_WEIGHT}
# What a person already has is never recommended back.
CONSUMED = (EventType.PURCHASE, EventType.RATING)


@dataclass
class TrainingData:
    """What the recommender learns from, in matrix form (rows: people, columns: items)."""

    profile_ids: list
    item_ids: list[str]
    interactions: sparse.csr_matrix          # implicit-feedback weights
    item_texts: list[str]
    item_attributes: list[dict]
    titles: dict[str, str]
    user_segments: np.ndarray                # segment index per row, -1 when none
    segment_count: int = 0


# --- fitting --------------------------------------------------------------------------------------


def recommender_fit(*, run_id: int) -> None:
    """Fit once per run and store the model for the chunk tasks; safe to call twice."""
    if PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).exists():
        return
    run = PipelineRun.objects.get(id=run_id)
    data = training_data_load(run_id=run_id)
    if data.interactions.nnz == 0:
        # Nobody allowing personalization has a catalogue interaction: nothing to learn.
        pipeline_warning_add(run_id=run_id, stage="recommender_fit", code="no_interactions",
                             message="No personalization-allowed profile has item interactions.")
        return
    model = model_fit(data, seed=run.params["seed"])
    payload = {"model": model, "row_of": {str(pid): i for i, pid in enumerate(data.profile_ids)},
               "titles": data.titles, "model_version": model.model_version,
               # For the run's quality record (services.recommendation_quality): people per item.
               "item_popularity": np.diff(sparse.csc_matrix(data.interactions).indptr).tolist(),
               "trained_people": len(data.profile_ids)}
    tuning = getattr(model, "tuning", None)
    with transaction.atomic():
        artifact_store(run_id=run_id, payload=payload)
        PipelineRun.objects.filter(id=run_id).update(model_version=model.model_version[:64])
        if tuning is not None:
            # The configuration served, as the search chose it: `evaluate_recommender` measures
            # the same search on the same kind of split (the model version hashes this config).
            run = PipelineRun.objects.select_for_update().get(id=run_id)
            run.params = {**run.params, "recommender": tuning}
            run.save(update_fields=["params"])
    pipeline_counts_add(run_id=run_id, trained_profiles=len(data.profile_ids), items=len(data.item_ids),
                        interactions=int(data.interactions.nnz))
    # Logs leave the host: how many people were trained on is an internal count (the run's).
    logger.info("recommender_fitted", extra={"run_id": run_id, "model_version": model.model_version})


def training_data_load(*, run_id: int) -> TrainingData:
    """Interactions of personalization-allowed active profiles, aggregated per (person, item)
    in the database, one profile-id range at a time."""
    items = list(Item.objects.order_by("id").values_list("id", "title", "category", "description", "attributes"))
    item_ids = [row[0] for row in items]
    column = {item_id: j for j, item_id in enumerate(item_ids)}
    profile_ids: list = []
    rows, cols, weights = [], [], []
    for index in pipeline_chunks(run_id=run_id, stage=Stage.RECOMMENDATIONS):
        chunk = PipelineChunk.objects.get(run_id=run_id, stage=Stage.RECOMMENDATIONS, index=index)
        ids = ChunkRange(run_id, chunk.stage, index, chunk.lower, chunk.upper, {}).profile_ids()
        allowed = sorted(policy.allowed(ids, PURPOSE))
        if not allowed:
            continue
        offset = len(profile_ids)
        row_of = {pid: offset + i for i, pid in enumerate(allowed)}
        profile_ids.extend(allowed)
        pairs = raw_rows(_pairs(allowed))
        if not pairs:
            continue
        r, c, w = _weights(pairs, row_of, column)
        rows.append(r)
        cols.append(c)
        weights.append(w)
    interactions = _matrix(rows, cols, weights, shape=(len(profile_ids), len(item_ids)))
    segments, segment_count = _segments_of(run_id, profile_ids)
    return TrainingData(
        profile_ids=profile_ids, item_ids=item_ids, interactions=interactions,
        item_texts=[_item_text(title, category, description, attributes)
                    for _, title, category, description, attributes in items],
        item_attributes=[{"category": category, **_flat(attributes)} for _, _, category, _, attributes in items],
        titles={row[0]: row[1] for row in items}, user_segments=segments, segment_count=segment_count,
    )


def _weights(pairs: list, row_of: dict, column: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, columns, implicit-feedback weights) of `_pairs` rows, catalogue items only."""
    pids, items_, views, carts, purchases, ratings, best = zip(*pairs)
    r = np.fromiter((row_of[as_uuid(p)] for p in pids), dtype=np.int64, count=len(pairs))
    c = np.fromiter((column.get(i, -1) for i in items_), dtype=np.int64, count=len(pairs))
    purchases, ratings = np.asarray(purchases, dtype=float), np.asarray(ratings, dtype=float)
    best = np.asarray([b if b is not None else 0.0 for b in best], dtype=float)
    w = (WEIGHTS[EventType.VIEW] * np.asarray(views, dtype=float)
         + WEIGHTS[EventType.ADD_TO_CART] * np.asarray(carts, dtype=float)
         + WEIGHTS[EventType.PURCHASE] * purchases
         + np.where(ratings > 0, rating_weight(best), 0.0))
    keep = c >= 0  # items outside the catalogue cannot be recommended or titled
    return r[keep], c[keep], w[keep]


def _matrix(rows: list, cols: list, weights: list, *, shape: tuple) -> sparse.csr_matrix:
    r, c = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    w = np.concatenate(weights).astype(np.float32) if rows else np.zeros(0, np.float32)
    return sparse.csr_matrix((w, (r, c)), shape=shape)


def histories_load(profile_ids: list, item_ids: list[str]) -> sparse.csr_matrix:
    """The people's current interactions (rows in `profile_ids` order) over a fitted model's
    items, weighted exactly as for fitting: scores events that came after the fit."""
    pairs = raw_rows(_pairs(profile_ids)) if profile_ids else []
    row_of = {pid: i for i, pid in enumerate(profile_ids)}
    parts = [_weights(pairs, row_of, {item: j for j, item in enumerate(item_ids)})] if pairs else []
    return _matrix([p[0] for p in parts], [p[1] for p in parts], [p[2] for p in parts],
                   shape=(len(profile_ids), len(item_ids)))


def _pairs(profile_ids: list):
    """Per (person, item): views, carts, purchases, ratings and the best rating."""
    return (
        Event.objects.filter(profile_id__in_array=profile_ids, item_id__isnull=False)
        .values("profile_id", "item_id")
        .annotate(
            views=Count("id", filter=Q(type=EventType.VIEW)),
            carts=Count("id", filter=Q(type=EventType.ADD_TO_CART)),
            purchases=Count("id", filter=Q(type=EventType.PURCHASE)),
            ratings=Count("id", filter=Q(type=EventType.RATING)),
            best=Max("rating", filter=Q(type=EventType.RATING)),
        )
        .values_list("profile_id", "item_id", "views", "carts", "purchases", "ratings", "best")
    )


def _segments_of(run_id: int, profile_ids: list) -> tuple[np.ndarray, int]:
    seg = Segmentation.objects.filter(run_id=run_id).first()
    segments = np.full(len(profile_ids), -1, dtype=np.int64)
    if seg is None:
        return segments, 0
    index_of = dict(Segment.objects.filter(segmentation=seg).values_list("id", "index"))
    member = dict(SegmentMembership.objects.filter(segmentation=seg).values_list("profile_id", "segment_id"))
    for i, pid in enumerate(profile_ids):
        segment_id = member.get(pid)
        if segment_id is not None:
            segments[i] = index_of[segment_id]
    return segments, seg.k


def _item_text(title: str, category: str, description: str, attributes: dict) -> str:
    words = [title, category, description or ""]
    words += [f"{name} {value}" for name, value in _flat(attributes).items()]
    return " ".join(w for w in words if w)


def _flat(attributes) -> dict[str, str]:
    """Scalar attributes as strings; lists joined (genres); nested objects skipped."""
    flat = {}
    for name, value in (attributes or {}).items():
        if isinstance(value, list):
            flat[name] = ", ".join(str(v) for v in value)
        elif isinstance(value, (str, int, float, bool)):
            flat[name] = str(value)
    return flat


# --- the model, behind one seam -----------------------------------------------------------------


def model_fit(data: TrainingData, *, seed: int):
    """Tune and fit personalization.recommender's HybridRecommender (see its adapter): the
    same `fit_tuned` that `evaluate_recommender` reports as "tessera"."""
    return HybridAdapter.fit(data, seed=seed)


# --- scoring a chunk ------------------------------------------------------------------------------

def recommendations_compute(*, run_id: int, chunk_index: int) -> int:
    """Recommendations for one profile-id range; returns the number of profiles scored."""
    chunk = pipeline_chunk_start(run_id=run_id, stage=Stage.RECOMMENDATIONS, index=chunk_index)
    if chunk is None:
        return 0
    ids = chunk.profile_ids()
    allowed = sorted(policy.allowed(ids, PURPOSE))
    if not PipelineArtifact.objects.filter(run_id=run_id, name=ARTIFACT).exists():
        allowed = []  # the fit found nothing to learn from (a warning on the run says so)
    artifact = artifact_load(run_id) if allowed else None
    rows: list[tuple] = []
    if allowed:
        rows = score_rows(run_id, allowed, artifact, top_k=int(chunk.params["top_k"]))
    with transaction.atomic():
        if not pipeline_chunk_claim_write(chunk):
            return 0
        derived_data_write_lock()
        still = policy.allowed(allowed, PURPOSE)
        rows = [row for row in rows if row[1] in still]
        rows_write(Recommendation, ROW_FIELDS, rows)
        pipeline_chunk_finish(chunk, count=len({row[1] for row in rows}), skipped=len(ids) - len(allowed))
    return len(rows)


ROW_FIELDS = ("run_id", "profile_id", "rank", "item_id", "title", "score", "explanation", "model_version",
              "created_at", "as_of")


def score_rows(run_id: int, profile_ids: list, artifact: dict, *, top_k: int, current: bool = False) -> list[tuple]:
    """Recommendation rows (values in ROW_FIELDS order) for the people, best first.

    `current`: score each person's history as it is now rather than their row in the fitted
    matrix (a refresh between fits: the item-item model stays, the history moves on).
    Operators' blocks and pins (services.oversight) apply here, so the pipeline and the
    real-time refresh enforce the same ones: a blocked item is never a candidate, a pinned
    one goes first (unless the person already has it)."""
    model, row_of, titles = artifact["model"], artifact["row_of"], artifact["titles"]
    version = artifact["model_version"]
    people = _people(run_id, profile_ids)
    overrides = overrides_in_force()
    rows_in_model = [row_of.get(str(pid)) for pid in profile_ids]
    segments = [people[pid].segment["index"] if people[pid].segment else None for pid in profile_ids]
    exclude = [people[pid].consumed | overrides.blocked for pid in profile_ids]
    current_history = {"history": histories_load(profile_ids, model.item_ids)} if current else {}
    ranked = model.recommend(rows=rows_in_model, segments=segments, exclude=exclude, k=top_k, **current_history)
    categories = _categories(ranked, people)
    now = timezone.now()
    result = []
    for pid, recs in zip(profile_ids, ranked):
        person = people[pid]
        segment = person.context.segment
        pinned = {item: for_segment for item, for_segment in overrides.pins_for(segment["name"] if segment else None)
                  if item in titles and item not in person.consumed}
        kept = [s for s in recs if s.item_id not in person.consumed and s.item_id not in overrides.blocked
                and s.item_id not in pinned]
        best = float(kept[0].score) if kept else 0.0
        listed = [(item, best, pinned_explanation(segment=segment if for_segment else None, person=person.context,
                                                  model_version=version)) for item, for_segment in pinned.items()]
        listed += [(scored.item_id, float(scored.score),
                    explanation_build(scored, person=person.context, titles=titles, model_version=version,
                                      categories=categories)) for scored in kept]
        for rank, (item_id, score, explanation) in enumerate(listed[:top_k], start=1):
            result.append((run_id, pid, rank, item_id, titles.get(item_id, item_id)[:300], score, explanation,
                           version[:64], now, person.as_of))
    return result


def _categories(ranked: list, people: dict) -> dict[str, str]:
    """Catalogue categories of the recommended items and of the people's own items."""
    needed = {scored.item_id for recs in ranked for scored in recs}
    for person in people.values():
        needed |= set(person.context.item_actions)
    return dict(Item.objects.filter(id__in=sorted(needed)).values_list("id", "category"))


@dataclass
class _Person:
    context: PersonContext
    consumed: set[str]
    segment: dict | None
    as_of: object = None  # when the newest of their events occurred


def _people(run_id: int, profile_ids: list) -> dict:
    """Per person: actions and sources per item, what they consumed, their segment."""
    actions: dict = defaultdict(lambda: defaultdict(set))
    item_sources: dict = defaultdict(lambda: defaultdict(set))
    sources: dict = defaultdict(set)
    for raw_pid, item_id, event_type, source in raw_rows(
        Event.objects.filter(profile_id__in_array=profile_ids)
        .values_list("profile_id", "item_id", "type", "source__key").distinct()
    ):
        pid = as_uuid(raw_pid)
        sources[pid].add(source)
        if item_id:
            actions[pid][item_id].add(event_type)
            item_sources[pid][item_id].add(source)
    segment_of = _segment_of(run_id, profile_ids)
    # Through the ORM (not raw_rows): the database's timestamps need Django's converters.
    newest = dict(Event.objects.filter(profile_id__in_array=profile_ids).values("profile_id")
                  .annotate(newest=Max("occurred_at")).values_list("profile_id", "newest"))
    people = {}
    for pid in profile_ids:
        segment = segment_of.get(pid)
        consumed = {item for item, types in actions[pid].items() if types & set(CONSUMED)}
        context = PersonContext(item_actions=dict(actions[pid]), item_sources=dict(item_sources[pid]),
                                sources=sources[pid],
                                segment={"id": segment["id"], "name": segment["name"]} if segment else None)
        people[pid] = _Person(context=context, consumed=consumed, segment=segment, as_of=newest.get(pid))
    return people


def _segment_of(run_id: int, profile_ids: list) -> dict:
    """The segment of this run's segmentation, only for people who still allow analytics."""
    seg = Segmentation.objects.filter(run_id=run_id).first()
    if seg is None:
        return {}
    analytics = policy.allowed(profile_ids, "analytics")
    rows = SegmentMembership.objects.filter(segmentation=seg, profile_id__in_array=sorted(analytics)).values_list(
        "profile_id", "segment_id", "segment__name", "segment__index")
    return {pid: {"id": str(sid), "name": name, "index": index} for pid, sid, name, index in rows}
