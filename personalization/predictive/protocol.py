"""The evaluation protocol of `evaluate_clv`: every modelling choice is fixed by a rule or made
on the calibration period alone, so the holdout is scored once and never chooses.

Fixed by rule, before any data is read:
- the transaction unit follows the input's shape: in `transactions` an order (a customer's
  lines sharing one time stamp, which is what an invoice is), in `purchases`, which has dates
  only, a customer's day;
- cleaning is the importers' own line rules (cancellations, returns and other non-positive
  quantities, non-product codes, non-positive prices, lines without a customer are skipped),
  the same rules `import_transactions` loads by;
- times are days with fractions; spend per order is averaged over all of a customer's orders;
- the models are fitted by maximum likelihood, which has no prior strength or other knob.

Chosen on the calibration period only: which model family forecasts (`CANDIDATES`). The
calibration period is split into a sub-calibration period and a validation window as long
as the holdout (at most a third of the calibration period); each candidate is fitted on the
sub-calibration period and scored by MAE on the validation window; the lowest MAE wins (ties
go to the earlier candidate). The winner is then refitted on the whole calibration period and
scored on the holdout, once, as `tessera`.

`calibration_only` is what makes this hold by construction: the chooser is handed a log
cut at the calibration end, so it cannot read a holdout order.
"""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from personalization.predictive import clv
from personalization.predictive.data import EPOCH, PurchaseLog, holdout, summarise

CANDIDATES = (clv.BGNBD, clv.MBGNBD)  # in tie-breaking order
CRITERION = "mae"
MAX_VALIDATION_SHARE = 1 / 3

UNIT_RULES = {
    "transactions": "an order: a customer's lines sharing one time stamp (an invoice)",
    "purchases": "a customer's day (the shape has dates only)",
}
CLEANING_RULE = ("the importers' line rules: cancellations, non-positive quantities (returns), non-product "
                 "codes, non-positive prices and lines without a customer are skipped")


def calibration_only(log: PurchaseLog, end: float) -> PurchaseLog:
    """The orders before `end`: all the protocol's choices are made on this."""
    keep = log.time < end
    return PurchaseLog(customer_ids=log.customer_ids, customer=log.customer[keep], time=log.time[keep],
                       spend=log.spend[keep])


def variant_choose(calibration: PurchaseLog, *, end: float, horizon: int) -> dict:
    """Choose the model family on a validation window carved from the end of `calibration`
    (a log holding no order at or after `end`). Returns the `protocol.selection` member."""
    if len(calibration.time) and calibration.time.max() >= end:
        raise ValueError("The chooser must be given the calibration period only.")
    first = float(np.floor(calibration.time.min())) if len(calibration.time) else end
    validation_days = max(1, min(int(horizon), math.floor((end - first) * MAX_VALIDATION_SHARE)))
    sub_end = end - validation_days
    summary = summarise(calibration, end=sub_end)
    actual, _ = holdout(calibration, summary.customer, start=sub_end, end=end)
    scores: dict[str, dict] = {}
    for variant in CANDIDATES:
        try:
            fitted = clv.transactions_fit(summary.x, summary.t_x, summary.T, variant=variant)
        except clv.FitError:
            continue
        predicted = clv.expected_purchases(fitted, summary.x, summary.t_x, summary.T, validation_days)
        error = predicted - actual
        scores[variant] = {"mae": round(float(np.mean(np.abs(error))), 4),
                           "rmse": round(float(np.sqrt(np.mean(error ** 2))), 4)}
    # Too little history before the validation window to fit anything: the first candidate.
    chosen = min(scores, key=lambda v: (scores[v][CRITERION], CANDIDATES.index(v))) if scores else CANDIDATES[0]
    last_sub_day = EPOCH + timedelta(days=int(sub_end) - 1)
    return {"criterion": CRITERION, "candidates": list(CANDIDATES), "sub_calibration_end": last_sub_day.isoformat(),
            "validation_days": validation_days, "validation_customers": int(len(summary.x)),
            "validation": scores, "chosen": chosen}
