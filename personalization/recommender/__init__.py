"""Tessera's hybrid recommender: pure Python, numpy and scipy (no Django), usable offline and by the pipeline.

Public API
----------
    from personalization.recommender import HybridRecommender, RecommenderConfig, tune

    result = tune(interactions, item_texts, item_categories, user_segments, seed=42)   # optional
    model = HybridRecommender(result.config).fit(interactions, item_texts, item_categories, user_segments)
    lists = model.recommend(user_rows, k=10, exclude_seen=True)    # list[list[Recommendation]]
    model.model_version                                            # "hybrid-1-<config hash>"

- `interactions`: scipy.sparse people × items, non-negative implicit-feedback weights
  (transformed by `config.weight_transform`, log1p by default). `item_texts`,
  `item_categories`: one string per item column. `user_segments`: one label per row (None,
  NaN or a negative number for none), or None.
- `recommend(user_rows, k, *, exclude_seen=True, exclude=None, history=None, segments=None)`:
  rows of the fitted matrix (None or -1 for someone not in it: cold start). `exclude` adds
  per-person item indices to leave out (what they bought); `history` scores changed histories
  without refitting; `segments` overrides the fitted segment labels. `rank(...)` returns only
  the item indices; `explain(user_row, item)` explains any one item.
- `Recommendation`: `item`, `score`, `rank`, `parts` {"collaborative", "content",
  "popularity", and "exposure" when the re-ranking is on (reranking.py)} summing to
  `score`; `contributing_items` [(own item, contribution)] summing to the collaborative part;
  `content_items` and `matched_attributes` (kind, value, contribution) each summing to the
  content part; `segment`; `fallback`
  ("segment_popularity" or "popularity") when the item comes from popularity alone.
- Explanations are built in one place, `personalization.explanations`, from what
  `personalization.services.recommender_adapter` makes of a `Recommendation`.
- `tune(...)` chooses hyper-parameters on a validation split carved out of the data it is
  given (pass training data only; search.py, the same search and budget every baseline gets);
  `tuning.fit_tuned(...)` tunes and fits: what the pipeline serves and what
  `evaluation.evaluate_movielens` (behind `manage.py evaluate_recommender`) measures as
  "tessera". `exclusion.candidate_mask` is the one rule for what is never recommended back.

The model
---------
score(u, i) = w_cf·Σ_j x_uj·B[j, i] + w_content·Σ_j x_uj·S[j, i] + w_pop·popularity_segment(u)[i]

B is a sparse EASE/EDLAE item-item model fitted through a low-rank-plus-diagonal Gram
approximation and kept to the top `cf_neighbours` weights per item (itemitem.py); S is the
top-`content_neighbours` TF-IDF/category similarity (content.py). Both are sparse, so a
100,000-item catalogue fits in memory (bench/recommender.py), and the served score is
literally the sum of per-own-item terms: the explanation is the computation, not an
approximation of it. The model pickles (plain numpy/scipy attributes).
"""

from personalization.recommender.config import PARTS, RecommenderConfig
from personalization.recommender.hybrid import AttributeMatch, HybridRecommender, Recommendation
from personalization.recommender.popularity import GLOBAL_FALLBACK, SEGMENT_FALLBACK
from personalization.recommender.tuning import TuningResult, tune

__all__ = [
    "PARTS",
    "GLOBAL_FALLBACK",
    "SEGMENT_FALLBACK",
    "AttributeMatch",
    "HybridRecommender",
    "Recommendation",
    "RecommenderConfig",
    "TuningResult",
    "tune",
]
