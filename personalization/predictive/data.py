"""Purchase logs as arrays, and the per-customer summaries the models read.

A purchase day is the unit of transaction (several lines or orders of one customer on one
day count once, as is usual for BG/NBD); a day's spend is the sum of its lines.
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
    """One row per (customer, purchase day): customer index, day number, spend that day."""

    customer_ids: list[str]
    customer: np.ndarray
    day: np.ndarray
    spend: np.ndarray

    @property
    def last_day(self) -> int:
        return int(self.day.max()) if len(self.day) else 0


@dataclass
class Summary:
    """Per customer with a purchase on or before `end`: the models' inputs in days."""

    customer: np.ndarray      # index into PurchaseLog.customer_ids
    x: np.ndarray             # repeat purchase days
    t_x: np.ndarray           # first purchase → last purchase
    T: np.ndarray             # first purchase → end
    days: np.ndarray          # purchase days (x + 1)
    mean_spend: np.ndarray    # spend per purchase day


def day_number(value: date | datetime) -> int:
    if isinstance(value, datetime):
        value = value.astimezone(UTC).date()
    return (value - EPOCH).days


def day_date(number: int) -> date:
    return date.fromordinal(EPOCH.toordinal() + int(number))


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
    customers, days, spends = [], [], []
    for row in rows:
        if on_progress:
            on_progress(1)
        if row is None:
            continue
        customer_id, when, spend = row
        customers.append(index.setdefault(customer_id, len(index)))
        days.append(day_number(when))
        spends.append(spend)
    customer = np.asarray(customers, dtype=np.int64)
    day = np.asarray(days, dtype=np.int64)
    spend = np.asarray(spends, dtype=float)
    # Collapse to one row per (customer, day), spend summed.
    keys = customer * 1_000_000 + (day - (day.min() if len(day) else 0))
    unique, inverse = np.unique(keys, return_inverse=True)
    first = np.zeros(len(unique), dtype=np.int64)
    first[inverse] = np.arange(len(keys))
    return PurchaseLog(customer_ids=list(index), customer=customer[first], day=day[first],
                       spend=np.bincount(inverse, weights=spend, minlength=len(unique)))


def summarise(log: PurchaseLog, *, end: int) -> Summary:
    """BG/NBD and Gamma-Gamma inputs as of the end of day `end` (purchases on days ≤ end)."""
    keep = log.day <= end
    customer, day, spend = log.customer[keep], log.day[keep], log.spend[keep]
    if not len(customer):
        empty = np.zeros(0)
        return Summary(np.zeros(0, dtype=np.int64), empty, empty, empty, empty, empty)
    ids, inverse = np.unique(customer, return_inverse=True)
    n = len(ids)
    first = np.full(n, np.iinfo(np.int64).max)
    last = np.full(n, np.iinfo(np.int64).min)
    np.minimum.at(first, inverse, day)
    np.maximum.at(last, inverse, day)
    days = np.bincount(inverse, minlength=n).astype(float)
    total = np.bincount(inverse, weights=spend, minlength=n)
    return Summary(customer=ids, x=days - 1, t_x=(last - first).astype(float), T=(end - first).astype(float),
                   days=days, mean_spend=total / days)


def holdout(log: PurchaseLog, customers: np.ndarray, *, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """(purchase days, spend) of each given customer in the days start < day ≤ end."""
    size = len(log.customer_ids)
    keep = (log.day > start) & (log.day <= end)
    count = np.bincount(log.customer[keep], minlength=size).astype(float)
    spend = np.bincount(log.customer[keep], weights=log.spend[keep], minlength=size)
    return count[customers], spend[customers]
