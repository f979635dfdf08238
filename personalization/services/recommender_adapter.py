"""The seam between the pipeline and the recommender model (personalization.recommender).

The pipeline speaks TrainingData in and `Scored` out (see explanations.py); this adapter
translates to and from the model's own API (item indices, `Recommendation` objects), so a
change there changes only this file. Pure numpy/scipy; no database.
"""

from __future__ import annotations

import copy

from scipy import sparse

from personalization.explanations import Scored
from personalization.recommender import HybridRecommender
from personalization.recommender.tuning import fit_tuned

# How much of the model's explanation a stored recommendation keeps: the person's top own
# items and matched attributes are what a sentence (and a reader) can take in.
MAX_BECAUSE = 3
MAX_ATTRIBUTES = 3
# The search's share of the recommender_fit task's time limit (840 s soft): it stops after this
# and keeps the best configuration found, leaving time to fit it on all the data.
TUNING_MAX_SECONDS = 120


class HybridAdapter:
    """A fitted HybridRecommender with the item ids it was fitted on; pickled as the artifact."""

    def __init__(self, model, item_ids: list[str], tuning: dict | None = None):
        self.model = model
        self.item_ids = list(item_ids)
        self.column = {item_id: j for j, item_id in enumerate(self.item_ids)}
        self.model_version = str(model.model_version)
        self.tuning = tuning   # what the search chose and measured, recorded on the run

    def without_people(self) -> HybridAdapter:
        """A copy that scores given histories only: the fitted people's rows are dropped."""
        model = copy.copy(self.model)
        model.interactions = sparse.csr_matrix((0, len(self.item_ids)))
        model.user_segments = []
        return HybridAdapter(model, self.item_ids, self.tuning)

    @classmethod
    def fit(cls, data, *, seed: int, config=None, max_seconds: float | None = TUNING_MAX_SECONDS) -> HybridAdapter:
        """Tune on a validation split of `data` and fit the choice on all of it (`fit_tuned`, the
        function `evaluate_recommender` measures as "tessera"); `config` skips the search."""
        categories = [attributes.get("category", "") for attributes in data.item_attributes]
        if config is not None:
            model = HybridRecommender(config).fit(data.interactions, data.item_texts, categories, data.user_segments)
            return cls(model, data.item_ids)
        model, tuning = fit_tuned(data.interactions, data.item_texts, categories, data.user_segments, seed=seed,
                                  max_seconds=max_seconds)
        record = {"config": tuning.config.to_dict(), "validation_ndcg@10": round(tuning.validation_ndcg, 6),
                  "start_validation_ndcg@10": round(tuning.start_ndcg, 6), "trials": len(tuning.trials),
                  "search_validation_ndcg@10": round(tuning.search_ndcg, 6),
                  "search_seconds": round(tuning.seconds, 3)}
        return cls(model, data.item_ids, record)

    def recommend(self, *, rows: list, segments: list, exclude: list[set[str]], k: int,
                  history=None) -> list[list[Scored]]:
        """Top k per person (rows: the person's row in the fitted matrix, None when new;
        history: their current interactions over `item_ids`, replacing the fitted rows)."""
        excluded = [[self.column[i] for i in items if i in self.column] for items in exclude]
        ranked = self.model.recommend(
            rows, k, exclude_seen=True, exclude=excluded, history=history,
            segments=[s if s is not None else -1 for s in segments])
        return [[self._scored(rec) for rec in recs] for recs in ranked]

    def _scored(self, rec) -> Scored:
        # The customer's own items: the collaborative and the content terms of each item,
        # added, kept where they raised the score, as shares of what they raised it by.
        per_item: dict[int, float] = {}
        for item, value in [*rec.contributing_items, *rec.content_items]:
            per_item[item] = per_item.get(item, 0.0) + value
        positive = sorted(((i, v) for i, v in per_item.items() if v > 0), key=lambda p: (-p[1], p[0]))
        total = sum(v for _, v in positive)
        because = [(self.item_ids[i], v / total, v) for i, v in positive[:MAX_BECAUSE]] if total > 0 else []
        attributes = [(match.kind, match.value, float(match.contribution))
                      for match in rec.matched_attributes if match.contribution > 0]
        return Scored(
            item_id=self.item_ids[rec.item], score=float(rec.score),
            parts={part: float(value) for part, value in rec.parts.items() if value != 0} or {"popularity": 0.0},
            because=because, attributes=attributes[:MAX_ATTRIBUTES], fallback=rec.fallback,
            # Everything of the person's own items not listed (other items, negative terms),
            # so the listed contributions plus this add up to the personal parts exactly.
            other_items=sum(per_item.values()) - sum(v for _, _, v in because),
            segment_used=rec.segment is not None,
        )
