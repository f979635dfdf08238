"""The content part: item-item similarity from item text and category.

Each item is a sparse attribute vector: TF-IDF of its text (title, description, attribute
values) plus a one-hot category, L2-normalised, so the similarity of two items is a sum over
the attributes they share: S[j, i] = Σ_a F[j, a]·F[i, a]. Only the `neighbours` most similar
items are kept per target item (computed a block at a time, so a 100,000-item catalogue
needs memory for one block, never for n×n).

The person's content score for item i is Σ_j x_uj·S[j, i] over their own items j. Both the
per-item terms and the per-attribute terms Σ_a F[i, a]·Σ_j x_uj·F[j, a] (over kept pairs) add
up to it exactly, which is what the explanation reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

TEXT, CATEGORY = "text", "category"
WORD = r"(?u)\b\w[\w'-]*\w\b"  # keeps "sci-fi" and "children's" whole


@dataclass
class ContentModel:
    features: sparse.csr_matrix        # items × attributes, rows L2-normalised
    attribute_kinds: list[str]         # per attribute column: "text" or "category"
    attribute_values: list[str]        # per attribute column: the word or the category name
    similarity: sparse.csr_matrix      # items × items, row: history item j, column: target item i

    @property
    def n_items(self) -> int:
        return self.features.shape[0]


def fit_content(item_texts: Sequence[str] | None, item_categories: Sequence[str] | None, *, n_items: int,
                neighbours: int, block_megabytes: int = 256) -> ContentModel:
    texts = list(item_texts) if item_texts is not None else [""] * n_items
    categories = list(item_categories) if item_categories is not None else [""] * n_items
    if len(texts) != n_items or len(categories) != n_items:
        raise ValueError("item_texts and item_categories need one entry per item column.")
    blocks, kinds, values = [], [], []
    text_features, vocabulary = _tfidf(texts)
    if vocabulary:
        blocks.append(text_features)
        kinds += [TEXT] * len(vocabulary)
        values += vocabulary
    names = sorted({c.strip() for c in categories if c and c.strip()})
    if names:
        column = {name: a for a, name in enumerate(names)}
        rows = [i for i, c in enumerate(categories) if c and c.strip()]
        cols = [column[categories[i].strip()] for i in rows]
        blocks.append(sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, len(names))))
        kinds += [CATEGORY] * len(names)
        values += names
    if blocks:
        features = normalize(sparse.hstack(blocks, format="csr"), norm="l2", axis=1)
    else:
        features = sparse.csr_matrix((n_items, 0))
    features = sparse.csr_matrix(features, dtype=np.float64)
    features.sort_indices()
    similarity = _top_similarity(features, neighbours=neighbours, block_megabytes=block_megabytes)
    return ContentModel(features=features, attribute_kinds=kinds, attribute_values=values, similarity=similarity)


def _tfidf(texts: list[str]) -> tuple[sparse.csr_matrix, list[str]]:
    # A word only one item uses matches nothing, and would only dilute that item's vector.
    min_df = 2 if len(texts) >= 20 else 1
    vectorizer = TfidfVectorizer(min_df=min_df, max_df=0.5 if len(texts) >= 20 else 1.0, sublinear_tf=True,
                                 stop_words="english", token_pattern=WORD, dtype=np.float64)
    try:
        matrix = vectorizer.fit_transform(texts)
    except ValueError:  # empty vocabulary: no usable text at all
        return sparse.csr_matrix((len(texts), 0)), []
    return matrix.tocsr(), [str(word) for word in vectorizer.get_feature_names_out()]


def _top_similarity(features: sparse.csr_matrix, *, neighbours: int, block_megabytes: int) -> sparse.csr_matrix:
    """Top-`neighbours` similar items per target, from sparse products a block of targets at a time."""
    n_items = features.shape[0]
    keep = min(neighbours, n_items - 1)
    if keep <= 0 or features.shape[1] == 0 or features.nnz == 0:
        return sparse.csr_matrix((n_items, n_items))
    features_t = features.T.tocsr()
    block = max(1, min(n_items, block_megabytes * 2**20 // (16 * n_items)))
    indptr, indices, data = [np.zeros(1, dtype=np.int64)], [], []
    count = 0
    for start in range(0, n_items, block):
        stop = min(n_items, start + block)
        rows = sparse.csr_matrix(features[start:stop] @ features_t)   # targets × history items, sparse
        rows.setdiag(0.0, k=start)
        rows.eliminate_zeros()
        for r in range(stop - start):
            lo, hi = rows.indptr[r], rows.indptr[r + 1]
            cols, vals = rows.indices[lo:hi], rows.data[lo:hi]
            if hi - lo > keep:
                chosen = np.argpartition(vals, hi - lo - keep)[hi - lo - keep:]
                cols, vals = cols[chosen], vals[chosen]
            indices.append(cols.astype(np.int32))
            data.append(vals)
            count += len(cols)
            indptr.append(np.array([count], dtype=np.int64))
    transposed = sparse.csr_matrix((np.concatenate(data), np.concatenate(indices), np.concatenate(indptr)),
                                   shape=(n_items, n_items))
    transposed.sort_indices()
    return transposed.T.tocsr()


def attribute_contributions(model: ContentModel, history_items: np.ndarray, history_weights: np.ndarray,
                            targets: list[int], kept: np.ndarray) -> list[list[tuple[int, float]]]:
    """Per target, (attribute column, contribution) pairs summing to Σ_j x_uj·S[j, target] over kept pairs.

    `kept[j, t]` says whether (history item j, target t) is one of the stored pairs.
    """
    # The rows read straight from the CSR arrays: a scipy slice per person costs more than the
    # arithmetic (this runs for every person refreshed).
    features = model.features
    target_indices, target_data = _csr_rows(features, targets)
    columns = np.unique(np.concatenate(target_indices)) if target_indices else np.zeros(0, dtype=np.int64)
    if columns.size == 0:
        return [[] for _ in targets]
    own = np.zeros((len(history_items), columns.size), dtype=features.dtype)  # own items × targets' attributes
    for j, (indices, data) in enumerate(zip(*_csr_rows(features, history_items))):
        at = np.minimum(np.searchsorted(columns, indices), columns.size - 1)
        hit = columns[at] == indices
        np.add.at(own, (j, at[hit]), data[hit])  # sums duplicates as toarray() would
    pooled = own.T @ (history_weights[:, None] * kept)                 # attributes × targets: Σ_j x_uj·F[j, a]
    position = {int(a): p for p, a in enumerate(columns)}
    result = []
    for t in range(len(targets)):
        pairs = []
        for a, value in zip(target_indices[t], target_data[t]):
            term = float(value * pooled[position[int(a)], t])
            if term != 0.0:
                pairs.append((int(a), term))
        result.append(pairs)
    return result


def _csr_rows(matrix: sparse.csr_matrix, rows) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per row: its column indices and values (a canonical CSR matrix: sorted, no duplicates)."""
    indptr = matrix.indptr
    bounds = [(indptr[r], indptr[r + 1]) for r in rows]
    return [matrix.indices[a:b] for a, b in bounds], [matrix.data[a:b] for a, b in bounds]
