"""The hybrid recommender: collaborative + content + segment popularity, every score explained.

For a person u with (transformed) history weights x_u:

    score(u, i) = w_cf·Σ_j x_uj·B[j, i] + w_content·Σ_j x_uj·S[j, i] + w_pop·pop_segment(u)[i]

B is the sparse item-item model of itemitem.py, S the sparse content similarity of content.py
and pop the segment's (or everyone's) popularity. The score is linear in the history, so each
own item's term is exactly how much the score would drop without that item, and the parts
and per-item terms add up to the served score (to floating-point rounding, ~1e-12).

People with no history get their segment's popularity (`fallback="segment_popularity"`), or
everyone's when the segment is unknown or too small (`fallback="popularity"`); a person whose
history scores fewer than k candidates gets the rest of the list from the same popularity,
flagged the same way and ranked after the personal items.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from personalization.recommender.config import PARTS, RecommenderConfig
from personalization.recommender.content import ContentModel, attribute_contributions, fit_content
from personalization.recommender.exclusion import candidate_mask, row_items
from personalization.recommender.fit_cache import FitCache
from personalization.recommender.itemitem import gram_factors, scaled_weights, selected_weights
from personalization.recommender.popularity import (
    GLOBAL_FALLBACK,
    SEGMENT_FALLBACK,
    PopularityModel,
    fit_popularity,
    segment_key,
)
from personalization.recommender.ranking import top_k
from personalization.recommender.reranking import (
    PROTECTED,
    Prices,
    capacity_for,
    capacity_prices,
    exposure_sample,
    person_scale,
    top_candidates,
)

NO_ROW = -1
_SCORE_BATCH_MEGABYTES = 256


@dataclass(frozen=True)
class AttributeMatch:
    """A content attribute the item shares with the person's items; contributions sum to the content part."""

    kind: str            # "category" or "text"
    value: str           # the category name or the word
    contribution: float


@dataclass(frozen=True)
class Recommendation:
    """One recommended item with its exact explanation.

    `parts` maps "collaborative", "content" and "popularity" (and "exposure", the re-ranking's
    penalty, for personal picks when it is on) to their contributions, which sum to `score`.
    `contributing_items` are (own item, contribution) pairs summing to the collaborative part,
    `content_items` the same for the content part, and `matched_attributes`
    split the content part by shared attribute. `segment` is the segment whose popularity was
    used (None for everyone's, or when no popularity was used); `fallback` is
    "segment_popularity" or "popularity" when the item comes from popularity alone.
    """

    item: int
    score: float
    rank: int
    parts: dict[str, float]
    contributing_items: list[tuple[int, float]] = field(default_factory=list)
    content_items: list[tuple[int, float]] = field(default_factory=list)
    matched_attributes: list[AttributeMatch] = field(default_factory=list)
    segment: Hashable | None = None
    fallback: str | None = None


class HybridRecommender:
    """Fit once on a people × items matrix, then recommend for any of its rows (or new histories)."""

    def __init__(self, config: RecommenderConfig | None = None):
        self.config = config or RecommenderConfig()
        self.interactions: sparse.csr_matrix | None = None
        self.weights: sparse.csr_matrix | None = None       # B, collaborative
        self.content: ContentModel | None = None
        self.popularity: PopularityModel | None = None
        self.exposure: np.ndarray | None = None             # per-item prices p_i, reranking.py
        self.capacity: Prices | None = None
        self.user_segments: list[Hashable | None] = []
        self.fit_seconds: dict[str, float] = {}   # per fitted piece, for logs and the bench
        self._products: dict[str, np.ndarray] = {}  # tuning only: FitCache.products for this fit

    @property
    def model_version(self) -> str:
        return self.config.model_version

    @property
    def n_items(self) -> int:
        self._require_fitted()
        return self.interactions.shape[1]

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, interactions: sparse.spmatrix, item_texts: Sequence[str] | None = None,
            item_categories: Sequence[str] | None = None, user_segments: np.ndarray | None = None, *,
            cache: FitCache | None = None) -> HybridRecommender:
        """Learn from `interactions` (people × items, non-negative implicit-feedback weights).

        `item_texts` and `item_categories` (one per item column) feed the content part;
        `user_segments` (one label per row; None, NaN or a negative number for "none") the
        popularity part. `cache` is only for `tune`.
        """
        config = self.config
        X = self._transform(sparse.csr_matrix(interactions, dtype=np.float64))
        fresh_cache = cache is None
        cache = cache if cache is not None else FitCache()
        self.interactions = X
        n_users, n_items = X.shape
        segments = np.asarray(user_segments, dtype=object) if user_segments is not None else None
        if segments is not None and len(segments) != n_users:
            raise ValueError("user_segments needs one entry per interaction row.")
        self.user_segments = [segment_key(s) for s in segments] if segments is not None else [None] * n_users

        timer = _Timer(self.fit_seconds)
        with timer("popularity"):
            self.popularity = cache.get("popularity", (config.min_segment_users,), lambda: fit_popularity(
                X, segments, min_segment_users=config.min_segment_users))

        self.weights = None
        product_keys: dict[str, tuple] = {}
        if config.cf_weight > 0:
            gram_key = (config.weight_transform, config.cf_rank, config.cf_user_exponent, config.seed,
                        config.svd_iterations)
            with timer("gram_factors"):
                gram = cache.get("gram", gram_key, lambda: gram_factors(
                    X, rank=config.cf_rank, user_exponent=config.cf_user_exponent, seed=config.seed,
                    iterations=config.svd_iterations))
            weights_key = gram_key + (config.cf_l2, config.cf_diag_reg, config.cf_popularity_exponent,
                                      config.cf_neighbours)
            product_keys["collaborative"] = weights_key
            selection_key = gram_key + (config.cf_l2, config.cf_diag_reg, config.cf_neighbours)
            with timer("item_item_weights"):
                self.weights = cache.get("weights", weights_key, lambda: scaled_weights(
                    cache.get("selection", selection_key, lambda: selected_weights(
                        gram, l2=config.cf_l2, diag_reg=config.cf_diag_reg, neighbours=config.cf_neighbours,
                        block_megabytes=config.block_megabytes)),
                    gram, popularity_exponent=config.cf_popularity_exponent))

        self.content = None
        if config.content_weight > 0:
            with timer("content"):
                self.content = cache.get("content", (config.content_neighbours,), lambda: fit_content(
                    item_texts, item_categories, n_items=n_items, neighbours=config.content_neighbours,
                    block_megabytes=config.block_megabytes))
            product_keys["content"] = (config.weight_transform, config.content_neighbours)

        self._products = {}
        if not fresh_cache and 8 * n_users * n_items <= cache.product_bytes:
            models = {"collaborative": self.weights, "content": getattr(self.content, "similarity", None)}
            self._products = {part: cache.get(f"{part}_product", key, lambda m=models[part]: (X @ m).toarray())
                              for part, key in product_keys.items()}

        self.exposure = None  # the prices below are set on the scores without them
        self.capacity = None
        if config.exposure_capacity > 0 and n_users:
            with timer("exposure"):
                sample = exposure_sample(n_users, seed=config.seed)
                items, scores = [], []
                for batch in self._batches(sample, None, None):
                    allowed = batch.scored & (batch.total > 0)
                    allowed[np.repeat(np.arange(batch.hist.shape[0]), np.diff(batch.hist.indptr)),
                            batch.hist.indices] = False
                    top_items, top_scores = top_candidates(batch.total, allowed)
                    items.append(top_items)
                    scores.append(top_scores / person_scale(batch.total, allowed)[:, None])
                self.capacity = capacity_prices(
                    np.vstack(items), np.vstack(scores), n_items,
                    capacity_for(config.exposure_capacity, len(sample), n_items))
                self.exposure = self.capacity.prices
        return self

    def _transform(self, X: sparse.csr_matrix) -> sparse.csr_matrix:
        X = X.copy()
        X.eliminate_zeros()
        if X.nnz and not (np.isfinite(X.data).all() and X.data.min() >= 0):
            raise ValueError("Interaction weights must be finite and non-negative.")
        if self.config.weight_transform == "log1p":
            X.data = np.log1p(X.data)
        elif self.config.weight_transform == "binary":
            X.data = np.ones_like(X.data)
        return X

    # -- scoring ---------------------------------------------------------------------------

    def recommend(self, user_rows: Sequence[int | None] | np.ndarray, k: int = 10, *, exclude_seen: bool = True,
                  exclude: Sequence[Iterable[int]] | sparse.spmatrix | None = None,
                  history: sparse.spmatrix | None = None,
                  segments: Sequence[Hashable | None] | None = None) -> list[list[Recommendation]]:
        """The top `k` items for each person, best first, each with its explanation.

        `user_rows` index the fitted matrix (None or -1: a person who was not in it, i.e. cold
        start). `history` (one row per entry of `user_rows`, raw weights) replaces the fitted
        rows, to score changed histories without refitting. `exclude_seen` drops every item
        in the history; `exclude` (item indices, or a matrix, per person) drops more, e.g. what
        was bought. `segments` replaces the fitted segment labels.
        """
        result: list[list[Recommendation]] = []
        for batch in self._batches(user_rows, history, segments):
            picks = self._select(batch, k, exclude_seen=exclude_seen, exclude=exclude)
            blocks = self._own_blocks(batch, picks)
            for r, chosen in enumerate(picks):
                result.append(self._explain(batch, r, chosen, blocks[r]))
        return result

    def rank(self, user_rows: Sequence[int | None] | np.ndarray, k: int = 10, *, exclude_seen: bool = True,
             exclude: Sequence[Iterable[int]] | sparse.spmatrix | None = None,
             history: sparse.spmatrix | None = None,
             segments: Sequence[Hashable | None] | None = None) -> list[list[int]]:
        """The item indices `recommend` would return, without building explanations (for tuning)."""
        result: list[list[int]] = []
        for batch in self._batches(user_rows, history, segments):
            result.extend([item for item, _ in chosen]
                          for chosen in self._select(batch, k, exclude_seen=exclude_seen, exclude=exclude))
        return result

    def explain(self, user_row: int | None, item: int, *, history: sparse.spmatrix | None = None,
                segment: Hashable | None = None, exclude_seen: bool = True) -> Recommendation:
        """The score and explanation of one item for one person, recommended or not.

        `rank` is the item's position among the person's candidates (0 if it is excluded).
        """
        segments = [segment] if segment is not None else None
        batch = next(iter(self._batches([user_row], history, segments)))
        cold = batch.cold[0]
        totals = batch.fallback_scores[0] if cold else batch.total[0]
        candidates = self._candidates(batch, 0, exclude_seen=exclude_seen, exclude=None)
        if not cold:
            self._exempt(batch, 0, candidates & batch.scored[0])
        rank = int((totals[candidates] > totals[item]).sum()) + 1 if candidates[item] else 0
        fallback = batch.fallback_kind[0] if cold else None
        chosen = [(item, fallback)]
        return dataclasses.replace(self._explain(batch, 0, chosen, self._own_blocks(batch, [chosen])[0])[0], rank=rank)

    # -- internals -------------------------------------------------------------------------

    def _require_fitted(self) -> None:
        if self.interactions is None:
            raise RuntimeError("Call fit() before recommending.")

    def _batches(self, user_rows, history, segments):
        self._require_fitted()
        rows = [NO_ROW if r is None else int(r) for r in np.asarray(user_rows, dtype=object).ravel()]
        n_users, n_items = self.interactions.shape
        if any(r >= n_users or r < NO_ROW for r in rows):
            raise IndexError("A user row is outside the fitted matrix.")
        if history is not None:
            history = self._transform(sparse.csr_matrix(history, dtype=np.float64))
            if history.shape != (len(rows), n_items):
                raise ValueError("history needs one row per user and one column per item.")
        if segments is not None and len(segments) != len(rows):
            raise ValueError("segments needs one entry per user.")
        size = max(1, _SCORE_BATCH_MEGABYTES * 2**20 // (8 * 5 * max(n_items, 1)))
        for start in range(0, len(rows), size):
            stop = min(len(rows), start + size)
            hist = history[start:stop] if history is not None else self._rows(rows[start:stop])
            if segments is not None:
                labels = [segment_key(s) for s in segments[start:stop]]
            else:
                labels = [self.user_segments[r] if r != NO_ROW else None for r in rows[start:stop]]
            known = None if history is not None or NO_ROW in rows[start:stop] else rows[start:stop]
            yield self._score(hist, labels, start, known)

    def _rows(self, rows: list[int]) -> sparse.csr_matrix:
        present = np.array([max(r, 0) for r in rows], dtype=np.int64)
        hist = self.interactions[present] if len(present) else sparse.csr_matrix((0, self.n_items))
        missing = [i for i, r in enumerate(rows) if r == NO_ROW]
        if missing:
            keep = np.ones(len(rows))
            keep[missing] = 0.0
            hist = sparse.diags(keep) @ hist
            hist.eliminate_zeros()
        return sparse.csr_matrix(hist)

    def _score(self, hist: sparse.csr_matrix, labels: list, offset: int, rows: list[int] | None = None) -> _Batch:
        weights = self.config.part_weights
        n_rows, n_items = hist.shape
        # Only the parts that are switched on are materialised (n_rows × n_items each).
        parts: dict[str, np.ndarray] = {}
        products = getattr(self, "_products", {}) if rows is not None else {}  # absent from older pickles
        if self.weights is not None:
            product = products["collaborative"][rows] if "collaborative" in products else (
                hist @ self.weights).toarray()
            parts["collaborative"] = weights["collaborative"] * product
        if self.content is not None:
            product = products["content"][rows] if "content" in products else (
                hist @ self.content.similarity).toarray()
            parts["content"] = weights["content"] * product
        popularity, used_segments = [], []
        for label in labels:
            scores, used = self.popularity.scores_for(label)
            popularity.append(scores)
            used_segments.append(used)
        if weights["popularity"] > 0:
            parts["popularity"] = weights["popularity"] * np.vstack(popularity)
        total = np.zeros((n_rows, n_items))
        scored = np.zeros((n_rows, n_items), dtype=bool)
        for values in parts.values():
            total += values
            scored |= values != 0
        exposure = getattr(self, "exposure", None)  # absent from models pickled before re-ranking
        if exposure is not None:
            # Re-ranking is one more additive part. It reorders only what the person's history
            # supports (a positive personal score), so it never lifts an item their history
            # speaks against above one it speaks for, and every personal pick has an own item
            # that raised it. Prices are in units of the person's best score (reranking.py).
            scored &= total > 0
            if getattr(self, "capacity", None) is not None:
                seen = np.zeros_like(scored)
                seen[np.repeat(np.arange(n_rows), np.diff(hist.indptr)), hist.indices] = True
                parts["exposure"] = -np.outer(person_scale(total, scored & ~seen), exposure)
            else:  # a model pickled with the earlier λ penalty
                parts["exposure"] = np.broadcast_to(-exposure, total.shape)
            total = total + parts["exposure"]
        cold = np.diff(hist.indptr) == 0
        fallback_kind = [SEGMENT_FALLBACK if used is not None else GLOBAL_FALLBACK for used in used_segments]
        return _Batch(hist=hist, parts=parts, total=total, scored=scored, fallback_scores=popularity, cold=cold,
                      used_segments=used_segments, fallback_kind=fallback_kind, offset=offset)

    def _candidates(self, batch: _Batch, r: int, *, exclude_seen: bool, exclude) -> np.ndarray:
        history = row_items(batch.hist, r) if exclude_seen else ()
        consumed = None
        if exclude is not None:
            position = batch.offset + r
            consumed = (row_items(sparse.csr_matrix(exclude[position]), 0) if sparse.issparse(exclude)
                        else exclude[position])
        return candidate_mask(batch.total.shape[1], history, consumed)

    def _exempt(self, batch: _Batch, r: int, scored: np.ndarray) -> None:
        """A person's PROTECTED best candidates by the unpriced score pay no price (reranking.py).
        Their served score is then at least every other candidate's, so the list is still
        exactly the order of the served score, and their "exposure" part is 0."""
        if getattr(self, "capacity", None) is None or "exposure" not in batch.parts:
            return
        raw = batch.total[r] - batch.parts["exposure"][r]
        best = top_k(raw, scored, PROTECTED)
        batch.total[r, best] = raw[best]
        batch.parts["exposure"][r, best] = 0.0

    def _select(self, batch: _Batch, k: int, *, exclude_seen: bool, exclude) -> list[list[tuple[int, str | None]]]:
        picks = []
        for r in range(batch.total.shape[0]):
            candidates = self._candidates(batch, r, exclude_seen=exclude_seen, exclude=exclude)
            fallback_scores = batch.fallback_scores[r]
            if batch.cold[r]:
                order = top_k(fallback_scores, candidates, k)
                picks.append([(int(i), batch.fallback_kind[r]) for i in order])
                continue
            scored = candidates & batch.scored[r]
            self._exempt(batch, r, scored)
            chosen = [(int(i), None) for i in top_k(batch.total[r], scored, k)]
            if len(chosen) < k:
                rest = candidates & ~scored
                chosen += [(int(i), batch.fallback_kind[r]) for i in top_k(fallback_scores, rest, k - len(chosen))]
            picks.append(chosen)
        return picks

    def _own_blocks(self, batch: _Batch, picks: list) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """Per row of the batch: the model weights (own items × personally recommended items)
        of the item-item and the content model, read for the whole batch with one lookup per
        model (a sparse slice per person costs more than the arithmetic it feeds)."""
        hist, shapes, rows, cols = batch.hist, [], [], []
        for r, chosen in enumerate(picks):
            own = hist.indices[hist.indptr[r]:hist.indptr[r + 1]]
            personal = np.fromiter((item for item, fallback in chosen if fallback is None), dtype=np.int64)
            shapes.append((len(own), len(personal)) if len(own) and len(personal) else None)
            if shapes[-1]:
                rows.append(np.repeat(own, len(personal)))
                cols.append(np.tile(personal, len(own)))
        values = [_lookup(model, rows, cols) for model in (self.weights, getattr(self.content, "similarity", None))]
        blocks, offset = [], 0
        for shape in shapes:
            if shape is None:
                blocks.append((None, None))
                continue
            size = shape[0] * shape[1]
            blocks.append(tuple(v[offset:offset + size].reshape(shape) if v is not None else None for v in values))
            offset += size
        return blocks

    def _explain(self, batch: _Batch, r: int, chosen: list[tuple[int, str | None]],
                 blocks: tuple[np.ndarray | None, np.ndarray | None]) -> list[Recommendation]:
        """Recommendations for row r of the batch; `chosen` is [(item, fallback)] best first;
        `blocks` its `_own_blocks` entry."""
        weights = self.config.part_weights
        start, stop = batch.hist.indptr[r], batch.hist.indptr[r + 1]
        own, x = batch.hist.indices[start:stop], batch.hist.data[start:stop]
        personal = [item for item, fallback in chosen if fallback is None]
        # Rows = own items, columns = recommended items.
        cf_columns = content_columns = None
        if blocks[0] is not None:
            cf_columns = blocks[0] * (weights["collaborative"] * x)[:, None]
        if blocks[1] is not None:
            content_columns = blocks[1] * (weights["content"] * x)[:, None]
            attributes = attribute_contributions(self.content, own, x, personal, content_columns != 0)
        result, c = [], 0
        for rank, (item, fallback) in enumerate(chosen, start=1):
            if fallback is not None:
                value = float(batch.fallback_scores[r][item])
                result.append(Recommendation(item=item, score=value, rank=rank,
                                             parts={"collaborative": 0.0, "content": 0.0, "popularity": value},
                                             segment=batch.used_segments[r], fallback=fallback))
                continue
            matches = []
            if content_columns is not None:
                matches = [AttributeMatch(kind=self.content.attribute_kinds[a], value=self.content.attribute_values[a],
                                          contribution=weights["content"] * value) for a, value in attributes[c]]
                matches.sort(key=lambda m: (-m.contribution, m.kind, m.value))
            result.append(Recommendation(
                item=item, score=float(batch.total[r, item]), rank=rank,
                parts={part: float(batch.parts[part][r, item]) if part in batch.parts else 0.0
                       for part in PARTS + tuple(p for p in batch.parts if p not in PARTS)},
                contributing_items=_pairs(own, cf_columns[:, c]) if cf_columns is not None else [],
                content_items=_pairs(own, content_columns[:, c]) if content_columns is not None else [],
                matched_attributes=matches,
                segment=batch.used_segments[r] if weights["popularity"] > 0 else None, fallback=None))
            c += 1
        return result


class _Timer:
    def __init__(self, into: dict[str, float]):
        self.into = into
        into.clear()

    @contextmanager
    def __call__(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.into[name] = time.perf_counter() - started


@dataclass
class _Batch:
    hist: sparse.csr_matrix
    parts: dict[str, np.ndarray]       # only the parts switched on
    total: np.ndarray
    scored: np.ndarray                 # some part is non-zero
    fallback_scores: list[np.ndarray]  # per row: the popularity it falls back to (shared, read-only)
    cold: np.ndarray
    used_segments: list
    fallback_kind: list[str]
    offset: int


def _lookup(matrix: sparse.csr_matrix | None, rows: list[np.ndarray], cols: list[np.ndarray]) -> np.ndarray | None:
    """matrix[rows[i], cols[i]] elementwise, all the pieces in one call (zeros where nothing is stored)."""
    if matrix is None:
        return None
    if not rows:
        return np.zeros(0, dtype=matrix.dtype)
    return np.asarray(matrix[np.concatenate(rows), np.concatenate(cols)], dtype=matrix.dtype).ravel()


def _pairs(items: np.ndarray, contributions: np.ndarray) -> list[tuple[int, float]]:
    """(item, contribution) for the non-zero contributions, largest first, ties by item."""
    # In Python: a person has a handful of own items, fewer than numpy's per-call overhead pays for.
    ordered = sorted((-value, item) for item, value in zip(items.tolist(), contributions.tolist()) if value != 0)
    return [(item, -negated) for negated, item in ordered]
