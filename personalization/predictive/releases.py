"""The differentially private release of a run's predictions, for the operator dashboard.

One histogram query over the run's Prediction rows: each person adds one row for their
churn band, one for their expected-value bracket and one for their repeat-order count
(0..7+), so the contribution bound is 3. The budget is debited by privacy.dp_release.
"""

from __future__ import annotations

from personalization.dp_mechanisms import histogram_measurement
from personalization.models import ChurnRisk, DpRelease, Prediction
from personalization.privacy import EPSILON, Measured, Query, accuracy, dp_release

BANDS = [ChurnRisk.LOW, ChurnRisk.MEDIUM, ChurnRisk.HIGH]
# Expected 90-day value brackets (lower edges, in the shop's currency): public, fixed.
VALUE_EDGES = [0, 10, 50, 100, 500, 1000]
MAX_REPEAT = 7
_VALUE_BASE, _REPEAT_BASE = 10, 20


def value_labels() -> list[str]:
    return [f"{low:,}–{high:,}" for low, high in zip(VALUE_EDGES, VALUE_EDGES[1:])] + [f"{VALUE_EDGES[-1]:,}+"]


def repeat_labels() -> list[str]:
    return [str(n) for n in range(MAX_REPEAT)] + [f"{MAX_REPEAT}+"]


def predictions_release(*, run_id: int) -> DpRelease:
    epsilon = EPSILON["predictions"]
    rows: list[int] = []
    for band, value, explanation in Prediction.objects.filter(run_id=run_id).values_list(
            "churn_risk", "expected_value", "explanation").iterator(chunk_size=5000):
        bracket = sum(1 for edge in VALUE_EDGES[1:] if float(value) >= edge)
        repeats = min(int(explanation.get("orders", 1)) - 1, MAX_REPEAT)
        rows += [BANDS.index(band), _VALUE_BASE + bracket, _REPEAT_BASE + repeats]
    categories = ([*range(len(BANDS))] + [_VALUE_BASE + i for i in range(len(VALUE_EDGES))]
                  + [_REPEAT_BASE + i for i in range(MAX_REPEAT + 1)])
    measurement, scale = histogram_measurement(categories, d_in=3, epsilon=epsilon)

    def values(outputs: list) -> dict:
        counts = dict(zip(categories, (max(0, int(v)) for v in outputs[0])))
        return {
            "churn_risk": {band.value: counts[i] for i, band in enumerate(BANDS)},
            "expected_value": {label: counts[_VALUE_BASE + i] for i, label in enumerate(value_labels())},
            "repeat_orders": {label: counts[_REPEAT_BASE + i] for i, label in enumerate(repeat_labels())},
        }

    return dp_release(Query(
        query_key=f"predictions:run:{run_id}", statistic="predictions", parts=[Measured(measurement, rows)],
        d_in=3, mechanism="discrete Laplace on counts by churn band, value bracket and repeat orders "
                          "(OpenDP count_by_categories + laplace)",
        noise_scale=scale, error_bound_95=accuracy(scale), values=values,
        details={"value_edges": VALUE_EDGES, "error_bound_applies_to": "counts"}, run_id=run_id,
    ))
