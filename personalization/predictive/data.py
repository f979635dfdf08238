"""Purchase logs as arrays, and the per-customer summaries the models read.

The unit of transaction is the order: a customer's lines sharing one time stamp (an
invoice's lines do; the `purchases` shape has dates only, so there an order is a
customer's day). An order's spend is the sum of its lines. Times are days since
1970-01-01 UTC, with fractions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np

from cdp.importers import purchases, transactions
from cdp.importers.common import Rejected

EPOCH = date(1970, 1, 1)
FORMATS = ("transactions", "purchases")


@dataclass
class PurchaseLog:
    """One row per order: customer index, time (days), spend."""

    customer_ids: list[str]
    customer: np.ndarray
    time: np.ndarray
    spend: np.ndarray

    @property
    def end(self) -> float:
        """The end of the last day with an order."""
        return float(np.floor(self.time.max()) + 1) if len(self.time) else 0.0


@dataclass
class Summary:
    """Per customer with an order before `end`: the models' inputs in days."""

    customer: np.ndarray      # index into PurchaseLog.customer_ids
    x: np.ndarray             # repeat orders
    t_x: np.ndarray           # first order → last order
    T: np.ndarray             # first order → end
    orders: np.ndarray        # x + 1
    mean_spend: np.ndarray    # spend per order


def day_number(value: date) -> int:
    return (value - EPOCH).days


def time_number(value: datetime) -> float:
    return (value.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds() / 86_400


def purchase_log_read(*, fmt: str, path: str, timezone: str = transactions.DEFAULT_TIMEZONE,
                      on_progress: Callable[[int], None] | None = None) -> PurchaseLog:
    """Read a `transactions` (UCI Online Retail) or `purchases` file or directory; rejected
    lines (cancellations, returns, malformed) are skipped as the importers skip them."""
    if fmt == "transactions":
        rows = ((r.customer_id, r.occurred_at, float(r.quantity * r.unit_price)) if not isinstance(r, Rejected)
                else None for r in transactions.read_transactions(path, timezone=timezone))
    elif fmt == "purchases":
        rows = ((r.customer_id, r.occurred_at, float(r.amount)) if not isinstance(r, Rejected) else None
                for r in purchases.read_purchases(path))
    else:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}.")
    return purchase_log_build(rows, on_progress=on_progress)


def purchase_log_build(rows: Iterable[tuple | None], *, on_progress=None) -> PurchaseLog:
    """From (customer id, when, spend) tuples (None for a skipped line)."""
    index: dict[str, int] = {}
    customers, seconds, spends = [], [], []
    for row in rows:
        if on_progress:
            on_progress(1)
        if row is None:
            continue
        customer_id, when, spend = row
        customers.append(index.setdefault(customer_id, len(index)))
        seconds.append(int(when.timestamp()))
        spends.append(spend)
    customer = np.asarray(customers, dtype=np.int64)
    second = np.asarray(seconds, dtype=np.int64)
    spend = np.asarray(spends, dtype=float)
    # One row per (customer, time stamp): an order, its lines' spend summed.
    pairs, inverse = np.unique(np.column_stack([customer, second]), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return PurchaseLog(customer_ids=list(index), customer=pairs[:, 0], time=pairs[:, 1] / 86_400,
                       spend=np.bincount(inverse, weights=spend, minlength=len(pairs)))


def summarise(log: PurchaseLog, *, end: float) -> Summary:
    """BG/NBD and Gamma-Gamma inputs as of `end` (orders before it)."""
    keep = log.time < end
    customer, time, spend = log.customer[keep], log.time[keep], log.spend[keep]
    if not len(customer):
        empty = np.zeros(0)
        return Summary(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    ids, inverse = np.unique(customer, return_inverse=True)
    n = len(ids)
    first = np.full(n, np.inf)
    last = np.full(n, -np.inf)
    np.minimum.at(first, inverse, time)
    np.maximum.at(last, inverse, time)
    orders = np.bincount(inverse, minlength=n).astype(float)
    total = np.bincount(inverse, weights=spend, minlength=n)
    return Summary(customer=ids, x=orders - 1, t_x=last - first, T=end - first, orders=orders,
                   mean_spend=total / orders)


def holdout(log: PurchaseLog, customers: np.ndarray, *, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """(orders, spend) of each given customer in start ≤ time < end."""
    size = len(log.customer_ids)
    keep = (log.time >= start) & (log.time < end)
    count = np.bincount(log.customer[keep], minlength=size).astype(float)
    spend = np.bincount(log.customer[keep], weights=log.spend[keep], minlength=size)
    return count[customers], spend[customers]
