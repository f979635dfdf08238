"""The tuning-only cache of the hybrid recommender's fits (hybrid.py, tuning.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from personalization.recommender.content import ContentModel
from personalization.recommender.itemitem import GramFactors
from personalization.recommender.popularity import PopularityModel


@dataclass
class FitCache:
    """Pieces that depend on only some hyper-parameters, shared by the fits of ONE data set
    (tune fits dozens of configurations on the same validation split). Keys name the
    hyper-parameters, not the data: never share a cache between data sets."""

    gram: dict[tuple, GramFactors] = field(default_factory=dict)
    selection: dict[tuple, sparse.csr_matrix] = field(default_factory=dict)
    weights: dict[tuple, sparse.csr_matrix] = field(default_factory=dict)
    content: dict[tuple, ContentModel] = field(default_factory=dict)
    popularity: dict[tuple, PopularityModel] = field(default_factory=dict)
    # history × model for every fitted row (dense), per model: a configuration that changes
    # only the blend reuses both products, and the exposure estimate and the ranking share them.
    collaborative_product: dict[tuple, np.ndarray] = field(default_factory=dict)
    content_product: dict[tuple, np.ndarray] = field(default_factory=dict)
    limit: int = 2  # entries kept per kind: a 100k-item model is ~1 GB
    product_bytes: int = 256 * 2**20  # larger fitted matrices are multiplied batch by batch as usual

    def get(self, kind: str, key: tuple, build):
        memo = getattr(self, kind)
        if key not in memo:
            while len(memo) >= self.limit:
                memo.pop(next(iter(memo)))
            memo[key] = build()
        return memo[key]
