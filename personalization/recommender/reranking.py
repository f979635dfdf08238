"""Capacity-constrained re-ranking: one knob, `RecommenderConfig.exposure_capacity` (C).

Models of the EASE family recommend a narrow head of the catalogue (on ml-100k ~16% of the
items reach anyone's top 10, Gini of exposure ≈ 0.94). The re-ranking caps how many lists an
item may appear in: at most

    capacity = ceil(C · n_people · k / n_items)      (C times the average exposure)

of the top-`EXPOSURE_K` lists of the fitted people (all of them, or a seeded sample of
`EXPOSURE_SAMPLE`). C = 0 switches it off (the ranking is the score order); smaller C
flattens exposure more. It is recommendation under capacity constraints (Christakopoulou,
Kawale and Banerjee, SDM 2017) solved through its Lagrangian dual, as an auction (Bertsekas,
1988): each item gets a price p_i ≥ 0, and every person's list is simply their top k of
score − p. The prices are found at fit time by raising, for every item more people pick than
its capacity, its price by the margin of the (capacity + 1)-th of them over their next-best
choice, until no item is over (or `PRICE_ROUNDS` rounds have passed: what is left over is
measured and reported by `capacity_prices`), with Bertsekas's bid increment ε so that it
ends. A person's `PROTECTED` best places (by the unpriced score) pay no price: they count
against the capacity, but an item that is many people's best can exceed it through those
places alone (it is then priced out of every other place). They keep most of the accuracy,
since NDCG weighs the first places most, while the priced places spread exposure.

The knob is not searched with the other hyper-parameters: tuning.py chooses it afterwards on
the same validation split (the strongest capacity within a fixed share of the validation NDCG).

Why prices and not a greedy assignment over people: a price does not depend on who else is
ranked, so the pipeline's batch and the real-time refresh of one person rank with the same
code and the same numbers (the model carries the prices set from its fit's lists, i.e. the
last run's exposure), and the price is one more additive part of the score ("exposure" in
`Recommendation.parts`): −s_u·p_i, s_u the person's best unpriced candidate score
(`person_scale`), so an item costs every person the same share of their own scale. The parts
still add up to the served score exactly, and the collaborative and content parts are still
exact sums of the own items' terms; the exposure part is its own line, never folded into
them. A protected place's exposure part is 0, and its served score is still at least every
other candidate's, so the list is exactly the served score's order. The re-ranking reorders
only items the person's history supports (a positive personal score); an item it speaks
against is left to the popularity fill-in, flagged as such, and popularity fall-backs for
people without a history are untouched.
bench/rerank_tradeoff.py prints the accuracy / coverage / Gini curve over C next to EASE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EXPOSURE_K = 10
EXPOSURE_SAMPLE = 5000
CANDIDATES = 200      # per person, the best-scored candidates the prices compete over
PRICE_ROUNDS = 200
EPSILON = 1e-2       # the auction's bid increment, in units of a person's best score
PROTECTED = 3         # a person's best places that no price can take


def exposure_sample(n_people: int, *, seed: int) -> np.ndarray:
    """The fitted rows whose lists set the prices: all, or a seeded sample, in row order."""
    if n_people <= EXPOSURE_SAMPLE:
        return np.arange(n_people)
    return np.sort(np.random.default_rng(seed).choice(n_people, EXPOSURE_SAMPLE, replace=False))


def capacity_for(multiple: float, n_people: int, n_items: int, k: int = EXPOSURE_K) -> int:
    """At most `multiple` times the average number of lists an item appears in (at least 1)."""
    return max(1, math.ceil(multiple * n_people * k / max(n_items, 1)))


def top_candidates(scores: np.ndarray, allowed: np.ndarray, m: int = CANDIDATES) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the `m` best allowed items and their scores (−inf where fewer are allowed)."""
    masked = np.where(allowed, scores, -np.inf)
    m = min(m, scores.shape[1])
    items = np.argpartition(-masked, m - 1, axis=1)[:, :m] if m < scores.shape[1] else np.tile(
        np.arange(scores.shape[1]), (scores.shape[0], 1))
    return items, np.take_along_axis(masked, items, axis=1)


def person_scale(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Per row, the best allowed score (1 where none is positive): prices are in these units, so
    an item costs every person the same share of their own best score."""
    best = np.where(allowed, scores, 0.0).max(axis=1, initial=0.0)
    return np.where(best > 0, best, 1.0)


@dataclass
class Prices:
    prices: np.ndarray    # per item, what the "exposure" part subtracts
    capacity: int
    max_count: int        # the most lists any item is in at these prices (≤ capacity when converged)
    rounds: int


def capacity_prices(items: np.ndarray, scores: np.ndarray, n_items: int, capacity: int,
                    k: int = EXPOSURE_K, rounds: int = PRICE_ROUNDS, protected: int = PROTECTED,
                    epsilon: float = EPSILON) -> Prices:
    """Item prices under which no item is in more than `capacity` lists, each list being the
    person's `protected` best candidates followed by the best k − protected of score − price.
    `items`/`scores`: each person's candidates (top_candidates). Items whose protected places
    alone reach the capacity are priced out of every other place."""
    prices = np.zeros(n_items)
    n_people, m = items.shape
    k, protected = min(k, m), min(protected, k, m)
    rows = np.arange(n_people)[:, None]
    head = np.argsort(-scores, axis=1, kind="stable")[:, :protected]
    head_valid = np.isfinite(scores[rows, head])
    kept = np.bincount(items[rows, head][head_valid], minlength=n_items)
    room = np.maximum(capacity - kept, 0)
    free = k - protected
    counts = kept.copy()
    done = 0
    for done in range(rounds + 1):
        adjusted = scores - prices[items]
        adjusted[rows, head] = -np.inf                  # already placed
        order = np.argsort(-adjusted, axis=1, kind="stable")
        chosen = order[:, :free]
        picked = items[rows, chosen]
        valid = np.isfinite(adjusted[rows, chosen])
        counts = kept + np.bincount(picked[valid], minlength=n_items)
        over = np.flatnonzero(counts - kept > room)
        if not over.size or done == rounds or not free:
            break
        # Each person's next-best choice: what they take instead of a priced-out item.
        nxt = adjusted[np.arange(n_people), order[:, free]] if free < m else np.full(n_people, -np.inf)
        for item in over:
            holders_r, holders_c = np.nonzero((picked == item) & valid)
            margins = np.sort(adjusted[holders_r, chosen[holders_r, holders_c]] - nxt[holders_r])[::-1]
            if margins.size <= room[item]:
                continue                                # over through protected places alone
            margins = np.where(np.isfinite(margins), margins, 1.0 + prices.max())
            step = margins[room[item]]
            prices[item] += step + epsilon   # ε-complementary slackness (Bertsekas): no price wars
    return Prices(prices=prices, capacity=capacity, max_count=int(counts.max(initial=0)), rounds=done)
