"""The evaluation protocol: every choice is made on the calibration period, never on the holdout."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from personalization.predictive import protocol
from personalization.predictive.data import day_number, purchase_log_read
from personalization.predictive.evaluation import clv_evaluate
from tests.personalization.predictive.test_clv_evaluation import bgnbd_purchases

CALIBRATION_END = date(2020, 12, 31)


def holdout_perturbed(log, *, end: float, seed: int):
    """The same log with its holdout orders thinned, moved and repriced at random."""
    rng = np.random.default_rng(seed)
    later = log.time >= end
    keep = ~later | (rng.random(len(log.time)) < 0.5)
    time = np.where(later, log.time + rng.uniform(0, 20, len(log.time)), log.time)
    spend = np.where(later, log.spend * rng.uniform(0.1, 10, len(log.time)), log.spend)
    return type(log)(customer_ids=log.customer_ids, customer=log.customer[keep], time=time[keep],
                     spend=spend[keep])


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    path = bgnbd_purchases(tmp_path_factory.mktemp("clv") / "sim.txt", customers=2000)
    return purchase_log_read(fmt="purchases", path=str(path))


def test_perturbing_the_holdout_changes_the_scores_but_no_choice(log):
    end = float(day_number(CALIBRATION_END) + 1)
    original = clv_evaluate(log, calibration_end=CALIBRATION_END, horizon_days=120, fmt="purchases")
    for seed in (1, 2):
        changed = clv_evaluate(holdout_perturbed(log, end=end, seed=seed), calibration_end=CALIBRATION_END,
                               horizon_days=120, fmt="purchases")

        # The validation scores, to four places, and so the choice, are the same...
        assert changed["protocol"] == original["protocol"]
        # ...while the holdout the models are scored on did change.
        assert changed["models"]["tessera"]["mae"] != original["models"]["tessera"]["mae"]


def test_the_validation_window_lies_inside_the_calibration_period(log):
    result = clv_evaluate(log, calibration_end=CALIBRATION_END, horizon_days=120, fmt="purchases")

    selection = result["protocol"]["selection"]
    assert selection["validation_days"] == 120  # the holdout's length: well under a third of the calibration
    assert date.fromisoformat(selection["sub_calibration_end"]) == date(2020, 9, 2)
    assert selection["chosen"] in protocol.CANDIDATES and set(selection["validation"]) == set(protocol.CANDIDATES)
    assert result["protocol"]["unit"] == protocol.UNIT_RULES["purchases"]


def test_a_long_holdout_leaves_two_thirds_of_the_calibration_period_to_fit_on(log):
    result = clv_evaluate(log, calibration_end=date(2020, 3, 31), horizon_days=365, fmt="purchases")

    assert result["protocol"]["selection"]["validation_days"] == 30  # 91 days of calibration // 3


def test_the_chooser_refuses_a_log_that_reaches_into_the_holdout(log):
    end = float(day_number(CALIBRATION_END) + 1)
    with pytest.raises(ValueError, match="calibration period only"):
        protocol.variant_choose(log, end=end, horizon=120)
    protocol.variant_choose(protocol.calibration_only(log, end), end=end, horizon=120)
