"""How much an interaction says about taste: the implicit-feedback weights production learns from.

The pipeline weighs a person's events on an item by kind (a view 1, an add to cart 2, a purchase
4, summed) and a rating by how much they liked it: stars above two, and a little (0.5) even when
they did not, since they still chose to watch or buy it. The offline evaluation gives Tessera
the same weights for the ratings a person has when they are scored, so what is measured is what
production would learn from that data.

An interaction is *relevant* (what a validation split holds out and scores) from RELEVANT_WEIGHT
up: an add to cart, a purchase, a rating of four or more; a view alone or a low rating is
history, not a hit.
"""

from __future__ import annotations

import numpy as np

VIEW_WEIGHT, CART_WEIGHT, PURCHASE_WEIGHT = 1.0, 2.0, 4.0
RELEVANT_WEIGHT = 2.0


def rating_weight(best_rating: np.ndarray | float) -> np.ndarray:
    """The weight of a rated item from the person's best rating of it (1-5 stars)."""
    return np.maximum(np.asarray(best_rating, dtype=np.float64) - 2.0, 0.5)
