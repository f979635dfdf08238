"""The recommender's hyper-parameters, in one frozen dataclass with a stable version string."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

# Bump when the algorithm changes in a way that changes scores for the same configuration.
ALGORITHM_VERSION = "1"

PARTS = ("collaborative", "content", "popularity")
WeightTransform = Literal["log1p", "binary", "identity"]


@dataclass(frozen=True)
class RecommenderConfig:
    """Hyper-parameters of the hybrid; the defaults are what `tune` starts from.

    Collaborative part (a sparse EASE/EDLAE item-item model, see itemitem.py):
      cf_l2                 ridge penalty, as a multiple of the mean item Gram diagonal, so
                            that it means the same on 10k or 10M interactions
      cf_diag_reg           extra penalty proportional to each item's own Gram diagonal
                            (EDLAE's dropout emphasis, p/(1-p)); damps popular items' self-fit
      cf_user_exponent      rows of the Gram are weighted by (history size / mean)^(-γ/2), so
                            heavy users do not dominate item co-occurrence
      cf_popularity_exponent each target column is scaled by (item support)^(-β): a mild
                            popularity de-bias that keeps the model item-item (and exact)
      cf_rank               rank of the low-rank-plus-diagonal Gram approximation
      cf_neighbours         weights kept per target item (top-N by magnitude)
    Blend: score = cf_weight·collaborative + content_weight·content + popularity_weight·popularity.
    Re-ranking (reranking.py): exposure_capacity C caps every item at C times the average
    number of top-10 lists an item is in, through a per-item price subtracted from the score;
    0 is off (the score order).
    """

    cf_weight: float = 1.0
    cf_l2: float = 18.0
    cf_diag_reg: float = 4.0
    cf_user_exponent: float = 0.3
    cf_popularity_exponent: float = 0.2
    cf_rank: int = 384
    cf_neighbours: int = 800
    content_weight: float = 0.001
    content_neighbours: int = 100
    popularity_weight: float = 0.0
    # Not searched: tuning.choose_capacity sets it on the validation split after the search.
    exposure_capacity: float = 0.0
    # Segment popularity is used only for segments at least this large, so that "popular in
    # your segment" never reveals what a handful of identifiable people bought.
    min_segment_users: int = 10
    weight_transform: WeightTransform = "log1p"
    svd_iterations: int = 4
    block_megabytes: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.cf_rank < 1 or self.cf_neighbours < 1 or self.content_neighbours < 1:
            problems.append("cf_rank, cf_neighbours and content_neighbours must be positive")
        if self.cf_l2 <= 0 or self.cf_diag_reg < 0:
            problems.append("cf_l2 must be positive and cf_diag_reg non-negative")
        if min(self.cf_weight, self.content_weight, self.popularity_weight, self.exposure_capacity) < 0:
            problems.append("part weights and exposure_capacity must be non-negative")
        if self.weight_transform not in ("log1p", "binary", "identity"):
            problems.append("weight_transform must be log1p, binary or identity")
        if self.block_megabytes < 1 or self.svd_iterations < 0 or self.min_segment_users < 1:
            problems.append("block_megabytes and min_segment_users must be positive")
        if problems:
            raise ValueError("Invalid recommender configuration: " + "; ".join(problems) + ".")

    @property
    def part_weights(self) -> dict[str, float]:
        return {"collaborative": self.cf_weight, "content": self.content_weight,
                "popularity": self.popularity_weight}

    @property
    def model_version(self) -> str:
        """`hybrid-<algorithm>-<hash of the configuration>`: equal versions score equally."""
        digest = hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
        return f"hybrid-{ALGORITHM_VERSION}-{digest}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> RecommenderConfig:
        return dataclasses.replace(self, **changes)
