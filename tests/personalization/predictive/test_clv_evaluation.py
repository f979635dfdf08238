"""evaluate_clv: the JSON document, the baselines, bad input, and UCI Online Retail."""

from __future__ import annotations

import json
from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

UCI = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "online-retail-uci" / "by-day"
MODEL_KEYS = {"mae", "rmse", "bias", "gini", "decile_calibration", "fit_seconds"}
START = date(2020, 1, 1)


def bgnbd_purchases(path: Path, *, customers: int = 3000, days: int = 540, seed: int = 3) -> Path:
    """A purchases file drawn from BG/NBD (r, α, a, b) = (0.5, 20, 0.6, 3), customers
    arriving over the first half year, spends gamma-distributed per customer."""
    rng = np.random.default_rng(seed)
    out = ["customer_id date quantity amount"]
    for c in range(customers):
        rate, dropout = rng.gamma(0.5, 1 / 20), rng.beta(0.6, 3)
        typical = rng.gamma(4, 10)
        day, bought = float(rng.uniform(0, 180)), 0
        while day < days:
            quantity = int(rng.integers(1, 4))
            out.append(f"  {c:05d} {(START + timedelta(days=int(day))).strftime('%Y%m%d')} {quantity} "
                       f"{rng.gamma(6, typical / 6) * quantity:.2f}")
            bought += 1
            if bought > 1 and rng.random() < dropout:  # BG/NBD: drop-out follows repeat purchases
                break
            day += rng.exponential(1 / rate)
    path.write_text("\r\n".join(out) + "\r\n")
    return path


def evaluate(*args: str) -> dict:
    out = StringIO()
    call_command("evaluate_clv", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_the_document_has_the_contract_shape_and_the_model_beats_the_baselines(tmp_path):
    path = bgnbd_purchases(tmp_path / "sim.txt")

    result = evaluate("--format", "purchases", "--path", str(path), "--calibration-end", "2020-12-31",
                      "--horizon-days", "120")

    assert set(result) == {"dataset", "calibration_end", "holdout_days", "customers", "models", "protocol"}
    assert result["holdout_days"] == 120 and result["calibration_end"] == "2020-12-31"
    assert {"tessera", "baseline_rate", "baseline_rfm", "bgnbd_gamma_gamma", "mbgnbd_gamma_gamma"} == set(
        result["models"])
    for scores in result["models"].values():
        assert set(scores) == MODEL_KEYS
        assert len(scores["decile_calibration"]) == 10
    models = result["models"]
    for baseline in ("baseline_rate", "baseline_rfm"):
        assert models["tessera"]["mae"] < models[baseline]["mae"], baseline
        assert models["bgnbd_gamma_gamma"]["mae"] < models[baseline]["mae"], baseline
    # `tessera` is the chosen family refitted on the whole calibration period.
    chosen = result["protocol"]["selection"]["chosen"]
    assert models["tessera"]["mae"] == models[f"{chosen}_gamma_gamma"]["mae"]
    # Drawn from the model itself: the aggregate forecast is close to what happened.
    assert abs(models["bgnbd_gamma_gamma"]["bias"]) < 0.1
    assert models["bgnbd_gamma_gamma"]["gini"] > 0.3


def test_the_holdout_runs_to_the_end_of_the_data_by_default(tmp_path):
    path = tmp_path / "p.csv"
    rows = [f"{c},{(START + timedelta(days=d)).isoformat()},1,{10 + c}" for c in range(40) for d in
            range(c % 5, 200, 7 + c % 11)]
    path.write_text("\n".join(rows) + "\n")

    result = evaluate("--format", "purchases", "--path", str(path), "--calibration-end", "2020-05-31")

    last = max(START + timedelta(days=d) for c in range(40) for d in range(c % 5, 200, 7 + c % 11))
    assert result["holdout_days"] == (last - date(2020, 5, 31)).days
    assert result["customers"] == 40


@pytest.mark.parametrize(("args", "message"), [
    (["--calibration-end", "31/12/2020"], "YYYY-MM-DD"),
    (["--calibration-end", "2030-01-01"], "no holdout"),
    (["--calibration-end", "2019-01-01", "--horizon-days", "30"], "Fewer than 10 customers"),
    (["--calibration-end", "2020-06-01", "--horizon-days", "0"], "positive"),
])
def test_bad_dates_end_with_one_plain_sentence(tmp_path, args, message):
    path = bgnbd_purchases(tmp_path / "sim.txt", customers=50)
    with pytest.raises(CommandError, match=message):
        call_command("evaluate_clv", "--format", "purchases", "--path", str(path), *args,
                     stdout=StringIO(), stderr=StringIO())


def test_a_missing_path_is_a_plain_error(tmp_path):
    with pytest.raises(CommandError, match="neither a file nor a directory"):
        call_command("evaluate_clv", "--format", "transactions", "--path", str(tmp_path / "nope"),
                     "--calibration-end", "2011-09-09", stdout=StringIO(), stderr=StringIO())


@pytest.mark.slow
@pytest.mark.skipif(not UCI.is_dir(), reason="UCI Online Retail is not in ../shared/data")
def test_on_uci_online_retail_the_models_beat_both_baselines_on_holdout_mae():
    result = evaluate("--format", "transactions", "--path", str(UCI), "--calibration-end", "2011-09-09")

    models = result["models"]
    assert result["holdout_days"] == 91 and result["customers"] > 3000
    assert result["protocol"]["selection"]["sub_calibration_end"] == "2011-06-10"
    for model in ("tessera", "bgnbd_gamma_gamma", "mbgnbd_gamma_gamma"):
        for baseline in ("baseline_rate", "baseline_rfm"):
            assert models[model]["mae"] < models[baseline]["mae"], (model, baseline)
        assert models[model]["rmse"] < models["baseline_rate"]["rmse"]
