"""Calibration/holdout evaluation of the CLV models against two baselines (`evaluate_clv`).

The models see orders up to the end of the calibration end's day (UTC); each customer seen
by then is scored on the holdout that follows: MAE and RMSE of per-customer orders, aggregate bias
((forecast − actual) / actual), normalized Gini of predicted value against actual holdout
spend, and decile calibration (customers in tenths by predicted value, mean predicted and
actual purchases and spend in each). Baselines: `baseline_rate`, each customer's repeat
orders per day since their first order extrapolated (at least a day of observation: a
customer first seen on the last day has no rate to speak of); `baseline_rfm`, the mean future purchases of
the customer's recency × frequency quintile cell, learnt on the last `horizon` days of the
calibration period (so it never sees the holdout). `tessera` is the model family chosen by
the protocol (`protocol.py`) on a validation window inside the calibration period, refitted on
the whole of it; every input but the holdout's actual orders comes from the log cut at the
calibration end.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date

import numpy as np

from personalization.predictive import clv, protocol
from personalization.predictive.data import PurchaseLog, Summary, day_number, holdout, summarise

DECILES = 10
QUINTILES = 5


class EvaluationError(ValueError):
    """The data or the dates leave nothing to evaluate; the message is one plain sentence."""


def clv_evaluate(log: PurchaseLog, *, calibration_end: date, horizon_days: int | None = None,
                 dataset: str = "", fmt: str = "transactions") -> dict:
    end = float(day_number(calibration_end) + 1)  # the calibration end's day is in
    if not len(log.time):
        raise EvaluationError("The file holds no usable purchases.")
    horizon = horizon_days if horizon_days is not None else int(round(log.end - end))
    if horizon <= 0:
        raise EvaluationError("The calibration end leaves no holdout: choose an earlier date or a positive "
                              "--horizon-days.")
    calibration = protocol.calibration_only(log, end)
    summary = summarise(calibration, end=end)
    if len(summary.x) < 10:
        raise EvaluationError("Fewer than 10 customers bought before the calibration end.")
    selection = protocol.variant_choose(calibration, end=end, horizon=horizon)
    actual, actual_spend = holdout(log, summary.customer, start=end, end=end + horizon)
    if not actual.sum():
        raise EvaluationError("No customer of the calibration period bought in the holdout.")
    models: dict[str, dict] = {}
    for name, predict in _predictors(calibration, summary, end, horizon, selection["chosen"]).items():
        started = time.perf_counter()
        try:
            purchases, value = predict()
        except clv.FitError as error:
            raise EvaluationError(str(error)) from None
        seconds = time.perf_counter() - started
        models[name] = scores(purchases, value, actual, actual_spend) | {"fit_seconds": round(seconds, 3)}
    return {"dataset": dataset, "calibration_end": calibration_end.isoformat(), "holdout_days": int(horizon),
            "customers": int(len(summary.x)), "models": models,
            "protocol": {"unit": protocol.UNIT_RULES.get(fmt, ""), "cleaning": protocol.CLEANING_RULE,
                         "selection": selection, "holdout_scored": "once, after every choice was made"}}


def _predictors(log: PurchaseLog, s: Summary, end: float, horizon: int, chosen: str) -> dict[str, Callable]:
    """Forecasts from the calibration log alone (`log` holds no holdout order)."""
    def model(variant: str) -> Callable:
        def predict():
            fitted = clv.transactions_fit(s.x, s.t_x, s.T, variant=variant)
            spend = clv.spend_fit(s.orders, s.mean_spend)
            purchases = clv.expected_purchases(fitted, s.x, s.t_x, s.T, horizon)
            return purchases, purchases * clv.expected_spend(spend, s.orders, s.mean_spend)
        return predict

    def rate():
        purchases = s.x / np.maximum(s.T, 1.0) * horizon
        return purchases, purchases * s.mean_spend

    def rfm():
        purchases = rfm_cell_forecast(log, s, end, horizon)
        return purchases, purchases * s.mean_spend

    return {"tessera": model(chosen), "bgnbd_gamma_gamma": model(clv.BGNBD), "mbgnbd_gamma_gamma": model(clv.MBGNBD),
            "baseline_rate": rate, "baseline_rfm": rfm}


def rfm_cell_forecast(log: PurchaseLog, s: Summary, end: float, horizon: int) -> np.ndarray:
    """Mean purchases in the next `horizon` days of customers in the same recency × frequency
    quintile cell, learnt from the window (end − w, end] with w the horizon, or half the
    calibration period when the horizon is longer (then scaled by horizon / w); a cell never
    seen there takes its recency quintile's mean, then the overall mean."""
    window = max(1, min(horizon, int((end - np.floor(log.time.min())) // 2))) if len(log.time) else horizon
    past = summarise(log, end=end - window)
    if not len(past.x):
        return np.zeros(len(s.x))
    future, _ = holdout(log, past.customer, start=end - window, end=end)
    future = future * (horizon / window)
    recency_cuts = _cuts(past.T - past.t_x)
    frequency_cuts = _cuts(past.x)
    cells = _cell(past.T - past.t_x, past.x, recency_cuts, frequency_cuts)
    overall = float(future.mean())
    by_recency = {r: float(future[cells // QUINTILES == r].mean()) for r in np.unique(cells // QUINTILES)}
    by_cell = {c: float(future[cells == c].mean()) for c in np.unique(cells)}
    now_cells = _cell(s.T - s.t_x, s.x, recency_cuts, frequency_cuts)
    return np.array([by_cell.get(c, by_recency.get(c // QUINTILES, overall)) for c in now_cells])


def _cuts(values: np.ndarray) -> np.ndarray:
    return np.quantile(values, np.linspace(0, 1, QUINTILES + 1)[1:-1])


def _cell(recency, frequency, recency_cuts, frequency_cuts) -> np.ndarray:
    return np.searchsorted(recency_cuts, recency, side="right") * QUINTILES + np.searchsorted(
        frequency_cuts, frequency, side="right")


def scores(purchases: np.ndarray, value: np.ndarray, actual: np.ndarray, actual_spend: np.ndarray) -> dict:
    error = purchases - actual
    total = float(actual.sum())
    return {
        "mae": round(float(np.mean(np.abs(error))), 4),
        "rmse": round(float(np.sqrt(np.mean(error ** 2))), 4),
        "bias": round(float(error.sum() / total), 4) if total else None,
        "gini": round(normalized_gini(actual_spend, value), 4),
        "decile_calibration": decile_calibration(purchases, value, actual, actual_spend),
    }


def normalized_gini(actual: np.ndarray, predicted: np.ndarray) -> float:
    """Gini of `actual` ordered by `predicted`, over the Gini of the perfect order (1: perfect
    ranking, 0: random). Ties in `predicted` keep the input order, as in the usual definition."""
    def gini(order_by: np.ndarray) -> float:
        order = np.argsort(-order_by, kind="stable")
        cumulative = np.cumsum(actual[order]) / actual.sum()
        n = len(actual)
        return float(cumulative.sum() / n - (n + 1) / (2 * n))

    if not actual.sum():
        return 0.0
    return gini(predicted) / gini(actual)


def decile_calibration(purchases, value, actual, actual_spend) -> list[dict]:
    """Customers in tenths by predicted value (highest first), with mean predicted and actual."""
    order = np.argsort(-value, kind="stable")
    rows = []
    for decile, part in enumerate(np.array_split(order, DECILES), start=1):
        if not len(part):
            continue
        rows.append({"decile": decile, "customers": int(len(part)),
                     "predicted_purchases": round(float(purchases[part].mean()), 4),
                     "actual_purchases": round(float(actual[part].mean()), 4),
                     "predicted_value": round(float(value[part].mean()), 2),
                     "actual_value": round(float(actual_spend[part].mean()), 2)})
    return rows
