"""The evaluation's baselines, each with its starting point and grid for the shared search.

All learn from the same binary matrix and rank through the production exclusion rule
(exclusion.py):

- popularity: training positives per item (nothing to tune).
- ease: EASE (Steck, 2019) exactly: B = I − P·diag(1/diag P), P = (XᵀX + λI)⁻¹, diag(B) = 0.
  The Gram matrix is decomposed once per training matrix (XᵀX = V·diag(s²)·Vᵀ, from the
  smaller of XᵀX and XXᵀ), so P = I/λ + V·diag(1/(s²+λ) − 1/λ)·Vᵀ for every λ without a new
  inverse: scores X_u·B = X_u − (X_u·P)·diag(1/diag P) cost one product per λ.
- rp3beta: RP3beta (Paudel et al., 2017): W = P_iu^α · P_ui^α with P_ui the user→item and
  P_iu the item→user transition probabilities, each column j divided by popularity_j^β, the
  diagonal zeroed and the `neighbours` largest weights kept per row; scores X_u·W.
- als: implicit's ALS on the binary matrix (confidence 1 + alpha·x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from threadpoolctl import threadpool_limits

from personalization.recommender.exclusion import candidate_mask, row_items
from personalization.recommender.ranking import top_k

# Bytes of the dense matrices EASE needs (a few n×n, or n×users, float64).
EASE_MAX_BYTES = 8 * 2**30
SCORE_BATCH = 512
RP3_WALK_BYTES = 2**30


def binary(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    X = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
    X.eliminate_zeros()
    X.data[:] = 1.0
    return X


def rank_scores(scores: np.ndarray, history: sparse.csr_matrix, consumed: sparse.csr_matrix | None,
                users: Sequence[int], k: int, rows: Sequence[int] | None = None) -> list[list[int]]:
    """Top k per person of dense `scores` (row r for users[r]), by the production exclusion rule."""
    result = []
    for r, user in enumerate(users):
        excluded = row_items(consumed, user) if consumed is not None else None
        allowed = candidate_mask(history.shape[1], row_items(history, user), excluded)
        result.append(top_k(scores[r if rows is None else rows[r]], allowed, k).tolist())
    return result


@dataclass
class Baseline:
    """A model family: `fit(train, params, seed, cache)` returns `scores(users)` (dense, one row per user)."""

    name: str
    start: dict[str, Any]
    space: dict[str, tuple] = field(default_factory=dict)

    def fit(self, train: sparse.csr_matrix, params: dict[str, Any], *, seed: int, cache: dict):
        raise NotImplementedError

    def recommend(self, train: sparse.csr_matrix, params: dict[str, Any], users: Sequence[int], k: int, *,
                  seed: int, consumed: sparse.csr_matrix | None = None, cache: dict | None = None) -> list[list[int]]:
        scorer = self.fit(train, params, seed=seed, cache=cache if cache is not None else {})
        return self.rank(scorer, train, users, k, consumed=consumed)

    def rank(self, scorer, train, users: Sequence[int], k: int, *, consumed=None) -> list[list[int]]:
        lists: list[list[int]] = []
        users = list(users)
        for start in range(0, len(users), SCORE_BATCH):
            batch = users[start:start + SCORE_BATCH]
            lists += rank_scores(scorer(batch), train, consumed, batch, k)
        return lists


class Popularity(Baseline):
    def __init__(self):
        super().__init__("popularity", {})

    def fit(self, train, params, *, seed, cache):
        counts = np.diff(sparse.csc_matrix(train).indptr).astype(np.float64)
        return lambda users: np.broadcast_to(counts, (len(users), counts.size))


@dataclass
class EaseFactors:
    """XᵀX = vectors·diag(values)·vectorsᵀ (only the non-zero part when there are fewer people than items)."""

    X: sparse.csr_matrix
    vectors: np.ndarray
    values: np.ndarray


def ease_factors(train: sparse.spmatrix, *, weighted: bool = False) -> EaseFactors:
    X = sparse.csr_matrix(train, dtype=np.float64) if weighted else binary(train)
    n_users, n_items = X.shape
    if 3 * 8 * min(n_users, n_items) * n_items > EASE_MAX_BYTES:
        raise MemoryError(f"EASE needs about {3 * 8 * min(n_users, n_items) * n_items / 2**30:.0f} GiB for "
                          f"{n_items} items; evaluate on a smaller catalogue.")
    if n_items <= n_users:
        values, vectors = np.linalg.eigh((X.T @ X).toarray())
    else:
        values, left = np.linalg.eigh((X @ X.T).toarray())
        keep = values > 1e-9 * max(values.max(initial=0.0), 1.0)
        values, left = values[keep], left[:, keep]
        vectors = np.asarray(X.T @ left) / np.sqrt(values)
    return EaseFactors(X=X, vectors=vectors, values=np.maximum(values, 0.0))


def ease_scores(factors: EaseFactors, l2: float, users: Sequence[int]) -> np.ndarray:
    """X_u·B for EASE with penalty `l2`, B = I − P·diag(1/diag P), P = (XᵀX + l2·I)⁻¹."""
    V = factors.vectors
    coefficient = 1.0 / (factors.values + l2) - 1.0 / l2
    diag_p = 1.0 / l2 + (V * V) @ coefficient
    rows = factors.X[list(users)]
    Xu = rows.toarray()
    # The sparse rows times V: a history's few items, not n_items multiplications per entry.
    XuP = Xu / l2 + (np.asarray(rows @ V) * coefficient) @ V.T
    return Xu - XuP / diag_p[None, :]


def ease_weights(train: sparse.spmatrix, l2: float) -> np.ndarray:
    """B itself (dense), straight from the definition: for tests and small catalogues."""
    X = binary(train)
    P = np.linalg.inv((X.T @ X).toarray() + l2 * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)[None, :]
    B[np.diag_indices_from(B)] = 0.0
    return B


class Ease(Baseline):
    """EASE on the binary matrix; `weighted` keeps the matrix's weights (a check, not the contract's EASE)."""

    def __init__(self, name: str = "ease", *, weighted: bool = False):
        super().__init__(name, {"l2": 250.0}, {"l2": (50.0, 100.0, 175.0, 350.0, 500.0, 750.0, 1000.0, 1500.0,
                                                       2500.0)})
        self.weighted = weighted

    def fit(self, train, params, *, seed, cache):
        if "factors" not in cache:
            cache["factors"] = ease_factors(train, weighted=self.weighted)
        factors = cache["factors"]
        return lambda users: ease_scores(factors, float(params["l2"]), users)


def _transitions(X: sparse.csr_matrix, alpha: float) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """P_iu^α, P_ui^α and the items' popularity (at least 1)."""
    user_degree = np.maximum(np.diff(X.indptr), 1).astype(np.float64)
    popularity = np.maximum(np.diff(sparse.csc_matrix(X).indptr), 1).astype(np.float64)
    p_ui = sparse.diags(1.0 / user_degree) @ X
    p_iu = sparse.csr_matrix(sparse.diags(1.0 / popularity) @ X.T.tocsr())
    p_ui.data **= alpha
    p_iu.data **= alpha
    return p_iu, p_ui, popularity


def rp3beta_walk(train: sparse.spmatrix, *, alpha: float) -> np.ndarray:
    """P_iu^α·P_ui^α dense: what every β and `neighbours` of one α share (the search varies them)."""
    p_iu, p_ui, _ = _transitions(binary(train), alpha)
    return (p_iu @ p_ui).toarray()


def rp3beta_weights(train: sparse.spmatrix, *, alpha: float, beta: float, neighbours: int,
                    block: int = 1024, walk: np.ndarray | None = None) -> sparse.csr_matrix:
    """RP3beta's item-item matrix W (row: history item j, column: target item i); `walk`:
    rp3beta_walk's result for this α, if already computed."""
    X = binary(train)
    n_items = X.shape[1]
    p_iu, p_ui, popularity = _transitions(X, alpha)
    keep = min(neighbours, n_items - 1)
    column_scale = popularity ** -beta
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        product = walk[start:stop] if walk is not None else (p_iu[start:stop] @ p_ui).toarray()
        W = product * column_scale[None, :]
        W[np.arange(stop - start), np.arange(start, stop)] = 0.0
        if keep <= 0:
            continue
        top = np.argpartition(-W, keep - 1, axis=1)[:, :keep]
        values = np.take_along_axis(W, top, axis=1)
        rows.append(np.repeat(np.arange(start, stop), keep))
        cols.append(top.ravel())
        vals.append(values.ravel())
    if not rows:
        return sparse.csr_matrix((n_items, n_items))
    W = sparse.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n_items, n_items))
    W.eliminate_zeros()
    return W


class RP3beta(Baseline):
    def __init__(self):
        super().__init__("rp3beta", {"alpha": 0.8, "beta": 0.3, "neighbours": 200},
                         {"beta": (0.1, 0.2, 0.4, 0.5), "alpha": (0.4, 0.6, 1.0), "neighbours": (50, 100, 400, 800)})

    def fit(self, train, params, *, seed, cache):
        alpha = float(params["alpha"])
        walk = None
        if 8 * train.shape[1] ** 2 <= RP3_WALK_BYTES:   # one α's walk kept for the search's next fits
            if cache.get("alpha") != alpha:
                cache.clear()
                cache.update(alpha=alpha, walk=rp3beta_walk(train, alpha=alpha))
            walk = cache["walk"]
        W = rp3beta_weights(train, alpha=alpha, beta=float(params["beta"]), neighbours=int(params["neighbours"]),
                            walk=walk)
        X = binary(train)
        return lambda users: (X[list(users)] @ W).toarray()


class Als(Baseline):
    def __init__(self):
        super().__init__("als", {"factors": 64, "regularization": 0.05, "alpha": 1.0, "iterations": 15},
                         {"alpha": (2.0, 5.0, 10.0, 20.0), "regularization": (0.01, 0.5, 2.0),
                          "factors": (32, 128, 256), "iterations": (30,)})

    def fit(self, train, params, *, seed, cache):
        # Imported here: only this offline baseline needs implicit, which is slow to import.
        from implicit.cpu.als import AlternatingLeastSquares

        X = sparse.csr_matrix(binary(train), dtype=np.float32)
        # implicit's own threads do the work; a threaded BLAS underneath would oversubscribe the cores.
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(random_state=seed, factors=int(params["factors"]),
                                            regularization=float(params["regularization"]),
                                            alpha=float(params["alpha"]), iterations=int(params["iterations"]))
            model.fit(X, show_progress=False)
        users_f, items_f = np.asarray(model.user_factors), np.asarray(model.item_factors)
        return lambda users: users_f[list(users)] @ items_f.T


BASELINES: dict[str, Baseline] = {b.name: b for b in (Popularity(), Als(), Ease(), RP3beta())}
