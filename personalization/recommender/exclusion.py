"""What is never recommended back to a person: one rule for production and for the evaluation.

A person's candidates are all items minus everything in their history (what the model was
given about them) minus everything they consumed (production: bought or rated, whatever the
rating). The pipeline passes its purchase and rating events as `consumed`; the offline
evaluation passes every item the person rated outside the held-out set (training positives and
ratings below the positive threshold), which is what production would know about them.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import sparse


def candidate_mask(n_items: int, history: Iterable[int] | np.ndarray, consumed: Iterable[int] | np.ndarray | None
                   ) -> np.ndarray:
    """True for the items that may be recommended: neither in the history nor consumed."""
    allowed = np.ones(n_items, dtype=bool)
    allowed[np.asarray(history, dtype=np.int64)] = False
    if consumed is not None:
        allowed[np.fromiter((int(i) for i in consumed), dtype=np.int64)] = False
    return allowed


def row_items(matrix: sparse.csr_matrix, row: int) -> np.ndarray:
    """The item indices with a non-zero entry in one row of a CSR matrix."""
    start, stop = matrix.indptr[row], matrix.indptr[row + 1]
    return matrix.indices[start:stop][matrix.data[start:stop] != 0]


def consumed_outside(rated: sparse.spmatrix, held_out: sparse.spmatrix) -> sparse.csr_matrix:
    """Everything a person rated except what is held out for scoring them (binary)."""
    rated = sparse.csr_matrix(rated, dtype=np.float64, copy=True)
    rated.data[:] = 1.0
    held = sparse.csr_matrix(held_out, dtype=np.float64, copy=True)
    held.data[:] = 1.0
    result = rated - rated.multiply(held)
    result.eliminate_zeros()
    return sparse.csr_matrix(result)
