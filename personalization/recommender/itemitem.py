"""The collaborative part: a sparse item-item model in the EASE family that fits any catalogue.

EASE (Steck, 2019) learns B = argmin ||X − XB||² + λ||B||² with diag(B) = 0, in closed
form B = I − P·diag(1/diag P), P = (XᵀX + Λ)⁻¹. EDLAE (Steck, 2020) makes Λ = λI + ρ·diag(XᵀX),
a dropout-style penalty that stops popular items fitting themselves. The closed form needs the
dense n×n inverse: 80 GB for 100,000 items. Here:

1. The Gram matrix G = XᵀWX (W: a mild down-weighting of heavy users) is approximated as
   low rank plus its exact diagonal, G ≈ VSVᵀ + R, with V the top-`rank` right singular
   vectors of W^½X from a randomized SVD (memory O((users + items)·rank)).
2. P = (G + Λ)⁻¹ then follows from the Woodbury identity as D⁻¹ − HHᵀ, with D = Λ + R
   diagonal and H an n×rank matrix; every entry of B is available without forming P.
3. B is materialised one block of target items at a time and only the `neighbours`
   largest-magnitude weights per target item are kept, so the model is a sparse matrix
   with at most n·neighbours entries; columns are scaled by support^(−β).

What is served is that sparse matrix and nothing else: score(u, i) = Σ_j x_uj·B[j, i] over the
person's own items j, so every term of the sum is an exact, additive per-item contribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy import sparse
from sklearn.utils.extmath import randomized_svd

SVD_OVERSAMPLES = 16


@dataclass
class GramFactors:
    """G ≈ factors·factorsᵀ + diag(residual), with G's exact diagonal kept in `diagonal`."""

    factors: np.ndarray      # items × rank, V·S^½
    diagonal: np.ndarray     # items: exact diag(G)
    residual: np.ndarray     # items: diag(G) − diag(VSVᵀ) ≥ 0
    support: np.ndarray      # items: number of people with the item in their history


def gram_factors(interactions: sparse.csr_matrix, *, rank: int, user_exponent: float, seed: int,
                 iterations: int = 4) -> GramFactors:
    """The low-rank-plus-diagonal approximation of the (user-weighted) item Gram matrix."""
    X = sparse.csr_matrix(interactions, dtype=np.float64)
    n_users, n_items = X.shape
    history = np.diff(X.indptr).astype(np.float64)
    active = history > 0
    mean = history[active].mean() if active.any() else 1.0
    row_weight = np.ones(n_users)
    row_weight[active] = (history[active] / mean) ** (-user_exponent / 2)
    Xw = sparse.diags(row_weight) @ X
    diagonal = np.asarray(Xw.multiply(Xw).sum(axis=0)).ravel()
    support = np.diff(X.tocsc().indptr).astype(np.float64)
    factors = _top_right_factors(Xw, rank=rank, seed=seed, iterations=iterations)
    residual = np.maximum(diagonal - np.einsum("ij,ij->i", factors, factors), 0.0)
    return GramFactors(factors=factors, diagonal=diagonal, residual=residual, support=support)


def _top_right_factors(Xw: sparse.csr_matrix, *, rank: int, seed: int, iterations: int) -> np.ndarray:
    """V·S of the top singular triplets of Xw (so V·S·(V·S)ᵀ approximates XwᵀXw)."""
    n_users, n_items = Xw.shape
    if Xw.nnz == 0 or min(Xw.shape) == 0:
        return np.zeros((n_items, 0))
    if min(n_users, n_items) <= rank + SVD_OVERSAMPLES:
        # Small enough for the exact decomposition (tests, tiny shops): no approximation.
        gram = (Xw.T @ Xw).toarray() if n_items <= n_users else None
        if gram is not None:
            values, vectors = np.linalg.eigh(gram)
            order = np.argsort(values)[::-1][:rank]
            return vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))
        _, singular, vt = np.linalg.svd(Xw.toarray(), full_matrices=False)
        return (vt[:rank].T * singular[:rank])
    _, singular, vt = randomized_svd(Xw, rank, n_oversamples=SVD_OVERSAMPLES, n_iter=iterations,
                                     random_state=seed)
    return vt.T * singular


def sparse_weights(gram: GramFactors, *, l2: float, diag_reg: float, popularity_exponent: float,
                   neighbours: int, block_megabytes: int = 256) -> sparse.csr_matrix:
    """B as a sparse items × items matrix (row: history item j, column: target item i)."""
    selected = selected_weights(gram, l2=l2, diag_reg=diag_reg, neighbours=neighbours,
                                block_megabytes=block_megabytes)
    return scaled_weights(selected, gram, popularity_exponent=popularity_exponent)


def scaled_weights(selected: sparse.csr_matrix, gram: GramFactors, *, popularity_exponent: float
                   ) -> sparse.csr_matrix:
    """B from `selected_weights`: each target column scaled by support^(−β). The scale does not
    change which weights a target keeps, so every β shares one selection (tuning varies β)."""
    transposed = selected.copy()
    column_scale = (np.maximum(gram.support, 1.0) ** (-popularity_exponent)).astype(np.float32)
    transposed.data *= np.repeat(column_scale, np.diff(transposed.indptr))
    transposed.eliminate_zeros()
    return transposed.T.tocsr()


def selected_weights(gram: GramFactors, *, l2: float, diag_reg: float, neighbours: int,
                     block_megabytes: int = 256) -> sparse.csr_matrix:
    """Bᵀ before the popularity scale: row i holds target item i's `neighbours` largest-magnitude weights."""
    n_items, rank = gram.factors.shape
    used = gram.diagonal > 0
    scale = gram.diagonal[used].mean() if used.any() else 1.0
    d = l2 * scale + diag_reg * gram.diagonal + gram.residual
    d_inv = 1.0 / d
    # P = D⁻¹ − D⁻¹W(I + WᵀD⁻¹W)⁻¹WᵀD⁻¹ = D⁻¹ − HHᵀ with H = D⁻¹W·L⁻ᵀ, LLᵀ = I + WᵀD⁻¹W.
    W = gram.factors
    inner = np.eye(rank) + (W.T * d_inv) @ W
    lower = np.linalg.cholesky(inner)
    H = scipy.linalg.solve_triangular(lower, (W * d_inv[:, None]).T, lower=True).T
    diag_p = d_inv - np.einsum("ij,ij->i", H, H)
    keep = min(neighbours, n_items - 1)
    if keep <= 0 or rank == 0:
        return sparse.csr_matrix((n_items, n_items))
    # float32 halves the time of the one O(items²·rank) step; B is stored in float32 anyway.
    H32 = H.astype(np.float32)
    scale = (1.0 / diag_p).astype(np.float32)
    # Per block row: float32 scores, their sign bits and argpartition's int64 indices.
    block = max(1, min(n_items, block_megabytes * 2**20 // (13 * n_items)))
    indptr = np.arange(0, n_items * keep + 1, keep, dtype=np.int64)
    indices = np.empty(n_items * keep, dtype=np.int32)
    data = np.empty(n_items * keep, dtype=np.float32)
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        # Rows: target items i of this block; columns: history items j. B[j, i] = H_j·H_i / P_ii.
        rows = H32[start:stop] @ H32.T
        rows *= scale[start:stop, None]
        rows[np.arange(stop - start), np.arange(start, stop)] = 0.0
        negative = np.signbit(rows)
        np.abs(rows, out=rows)
        top = np.argpartition(rows, n_items - keep, axis=1)[:, n_items - keep:]
        top.sort(axis=1)
        values = np.take_along_axis(rows, top, axis=1)
        values[np.take_along_axis(negative, top, axis=1)] *= -1.0
        indices[start * keep:stop * keep] = top.ravel()
        data[start * keep:stop * keep] = values.ravel()
        del rows, negative, top
    return sparse.csr_matrix((data, indices, indptr), shape=(n_items, n_items))
