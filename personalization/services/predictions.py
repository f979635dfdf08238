"""Churn risk and 90-day expected value of analytics-allowed profiles (the `predictions` stage).

Reads the run's ProfileFeatures (written only for people allowing `analytics`): orders,
days since the first and the last purchase, total spend. Fits MBG/NBD and
Gamma-Gamma on them (personalization.predictive.clv), then writes one Prediction per
profile with at least one purchase, re-checking `analytics` under the derived-data lock
so a withdrawal since the features were computed is honoured, and one PredictionModel row
(parameters and fit figures, no person). Logs the run id and the model version only.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import numpy as np
from django.db import transaction
from django.utils import timezone

from consent import policy
from personalization.db import rows_write
from personalization.locks import derived_data_write_lock
from personalization.models import ChurnRisk, Prediction, PredictionModel, ProfileFeatures
from personalization.predictive import clv

logger = logging.getLogger(__name__)
PURPOSE = "analytics"
HORIZON_DAYS = 90
VARIANT = clv.MBGNBD  # P(alive) of one-time buyers falls with time (BG/NBD holds it at 1)
# Churn risk is the chance of no purchase in the next 90 days (dropped out, or still a
# customer but quiet): at least HIGH is high risk, at least MEDIUM medium.
HIGH, MEDIUM = 0.8, 0.5
FIELDS = ("run_id", "profile_id", "p_alive", "expected_purchases_90d", "expected_value", "churn_risk",
          "explanation", "model_version", "created_at")


def predictions_compute(*, run_id: int) -> int:
    """Fit and store the run's predictions; safe to call twice (the second finds the model)."""
    from personalization.services.pipeline import pipeline_counts_add, pipeline_warning_add

    if PredictionModel.objects.filter(run_id=run_id).exists():
        return 0
    rows = list(ProfileFeatures.objects.filter(run_id=run_id, frequency__gt=0, first_purchase_days__isnull=False)
                .order_by("profile_id")
                .values_list("profile_id", "frequency", "first_purchase_days", "recency_days", "monetary"))
    if not rows:
        pipeline_warning_add(run_id=run_id, stage="predictions", code="no_purchases",
                             message="No analytics-allowed profile has a purchase: nothing to predict.")
        return 0
    ids, orders, first, recency, monetary = zip(*rows)
    orders = np.asarray(orders, dtype=float)
    T = np.asarray(first, dtype=float)
    t_x = np.clip(T - np.asarray(recency, dtype=float), 0, T)
    x = orders - 1
    mean_spend = np.asarray([float(m) for m in monetary]) / orders
    started = time.perf_counter()
    try:
        transactions = clv.transactions_fit(x, t_x, T, variant=VARIANT)
        spend = clv.spend_fit(orders, mean_spend)
    except clv.FitError as error:
        pipeline_warning_add(run_id=run_id, stage="predictions", code="not_enough_data", message=str(error))
        return 0
    fit_seconds = time.perf_counter() - started
    alive = clv.p_alive(transactions, x, t_x, T)
    purchases = clv.expected_purchases(transactions, x, t_x, T, HORIZON_DAYS)
    quiet = clv.p_no_purchase(transactions, x, t_x, T, HORIZON_DAYS)
    per_purchase = clv.expected_spend(spend, orders, mean_spend)
    version = f"clv-{VARIANT}-gg/run-{run_id}"
    now = timezone.now()
    out = [
        (run_id, pid, round(float(alive[i]), 4), round(float(purchases[i]), 4),
         Decimal(str(round(float(purchases[i] * per_purchase[i]), 2))), churn_band(float(quiet[i])),
         explanation_build(x=x[i], t_x=t_x[i], T=T[i], p_alive=alive[i], purchases=purchases[i],
                           quiet=quiet[i], per_purchase=per_purchase[i]), version, now)
        for i, pid in enumerate(ids)
    ]
    expected = clv.repeat_count_distribution(transactions, T)
    observed = np.bincount(np.minimum(x, len(expected) - 1).astype(int), minlength=len(expected))
    with transaction.atomic():
        derived_data_write_lock()
        if PredictionModel.objects.select_for_update().filter(run_id=run_id).exists():
            return 0
        still = policy.allowed([row[1] for row in out], PURPOSE)
        out = [row for row in out if row[1] in still]
        PredictionModel.objects.create(
            run_id=run_id, model_version=version, transactions=transactions.as_dict(), spend=spend.as_dict(),
            fit_seconds=round(fit_seconds, 3),
            fit_check={"expected": [round(float(v), 2) for v in expected], "observed": observed.tolist()})
        rows_write(Prediction, FIELDS, out)
    pipeline_counts_add(run_id=run_id, predicted=len(out))
    logger.info("predictions_computed", extra={"run_id": run_id, "model_version": version})
    return len(out)


def churn_band(p_no_purchase: float) -> str:
    if p_no_purchase >= HIGH:
        return ChurnRisk.HIGH
    if p_no_purchase >= MEDIUM:
        return ChurnRisk.MEDIUM
    return ChurnRisk.LOW


def explanation_build(*, x, t_x, T, p_alive, purchases, quiet, per_purchase) -> dict:
    """The figures behind a prediction and one sentence a customer or an operator can read."""
    since_last = int(round(T - t_x))
    interval = int(round(t_x / x)) if x >= 1 else None
    if interval is not None:
        rhythm = "about daily" if interval <= 1 else f"every ~{interval} days"
        habit = f"Usually buys {rhythm}; last purchase {_ago(since_last)}."
    else:
        habit = f"Bought once, {_ago(since_last)}."
    text = (f"{habit} {p_alive:.0%} likely to still be a customer; about {purchases:.1f} purchases expected in "
            f"the next {HORIZON_DAYS} days ({quiet:.0%} chance of none).")
    return {"text": text, "orders": int(x) + 1, "typical_interval_days": interval,
            "days_since_last_purchase": since_last, "p_no_purchase_90d": round(float(quiet), 4),
            "expected_spend_per_purchase": round(float(per_purchase), 2), "horizon_days": HORIZON_DAYS}


def _ago(n: int) -> str:
    return "today" if n <= 0 else ("1 day ago" if n == 1 else f"{n} days ago")
