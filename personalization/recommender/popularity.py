"""The popularity part: what people in the same segment (or everyone) have in their histories.

Scores are the share of people with the item, divided by the largest such share, so they lie
in [0, 1]. A segment with fewer than `min_segment_users` people uses everyone's popularity
instead: "popular in your segment" should never reveal what a handful of people bought.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

SEGMENT_FALLBACK = "segment_popularity"
GLOBAL_FALLBACK = "popularity"


@dataclass
class PopularityModel:
    global_scores: np.ndarray
    segment_scores: dict[Hashable, np.ndarray] = field(default_factory=dict)
    segment_sizes: dict[Hashable, int] = field(default_factory=dict)

    def scores_for(self, segment: Hashable | None) -> tuple[np.ndarray, Hashable | None]:
        """(scores, the segment they come from, or None for everyone's popularity)."""
        if segment is not None and segment in self.segment_scores:
            return self.segment_scores[segment], segment
        return self.global_scores, None


def is_segment(label) -> bool:
    """None, NaN, "" and negative numbers mean "no segment"."""
    if label is None:
        return False
    if isinstance(label, (int, np.integer)):
        return int(label) >= 0
    if isinstance(label, (float, np.floating)):
        return not np.isnan(label) and label >= 0
    return label != ""


def segment_key(label) -> Hashable | None:
    if not is_segment(label):
        return None
    if isinstance(label, (np.integer, np.floating)):
        return label.item()
    return label


def fit_popularity(interactions: sparse.csr_matrix, user_segments: np.ndarray | None, *,
                   min_segment_users: int) -> PopularityModel:
    has = sparse.csr_matrix(interactions, copy=True)
    has.data = (has.data != 0).astype(np.float64)
    model = PopularityModel(global_scores=_normalised(np.asarray(has.sum(axis=0)).ravel()))
    if user_segments is None:
        return model
    labels = [segment_key(label) for label in np.asarray(user_segments, dtype=object)]
    if len(labels) != has.shape[0]:
        raise ValueError("user_segments needs one entry per interaction row.")
    members: dict[Hashable, list[int]] = {}
    for row, label in enumerate(labels):
        if label is not None:
            members.setdefault(label, []).append(row)
    for label, rows in members.items():
        model.segment_sizes[label] = len(rows)
        if len(rows) >= min_segment_users:
            counts = np.asarray(has[rows].sum(axis=0)).ravel()
            if counts.any():
                model.segment_scores[label] = _normalised(counts)
    return model


def _normalised(counts: np.ndarray) -> np.ndarray:
    top = counts.max() if counts.size else 0.0
    return counts / top if top > 0 else np.zeros_like(counts, dtype=np.float64)
