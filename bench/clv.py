"""Fitting the churn/CLV models on 100,000 customers (target: < 60 s on this machine).

    python bench/clv.py [--customers 100000] [--seed 7]

Customers are drawn from known MBG/NBD and BG/NBD parameters (r, α, a, b) = (0.25, 30,
0.8, 2.5) with 3 to 18 months of history each (times in days, with fractions, as the
pipeline passes them), spends from a Gamma-Gamma population. Prints the fit and prediction
times of each model and the recovered parameters. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from personalization.predictive import clv  # noqa: E402

TRUE = (0.25, 30.0, 0.8, 2.5)
TARGET_SECONDS = 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    T = rng.uniform(90, 540, args.customers)
    orders_spend = rng.gamma(4.0, 1 / 15.0, args.customers)  # per-customer spend rate (Gamma-Gamma's ν)
    print(f"{args.customers:,} customers; target: fit + predict < {TARGET_SECONDS} s per model")
    print(f"  {'model':<10}{'fit s':>8}{'predict s':>11}{'r':>8}{'alpha':>8}{'a':>8}{'b':>8}")
    for variant in (clv.MBGNBD, clv.BGNBD):
        x, t_x, _ = clv.simulate(TRUE, T, variant=variant, seed=args.seed)
        orders = x + 1
        mean_spend = rng.gamma(6.0 * orders, 1.0 / orders_spend) / orders
        started = time.perf_counter()
        model = clv.transactions_fit(x, t_x, T, variant=variant)
        spend = clv.spend_fit(orders, mean_spend)
        fitted = time.perf_counter() - started
        started = time.perf_counter()
        clv.p_alive(model, x, t_x, T)
        value = clv.expected_purchases(model, x, t_x, T, 90) * clv.expected_spend(spend, orders, mean_spend)
        predicted = time.perf_counter() - started
        assert np.isfinite(value).all()
        print(f"  {variant:<10}{fitted:>8.2f}{predicted:>11.2f}{model.r:>8.3f}{model.alpha:>8.2f}{model.a:>8.3f}"
              f"{model.b:>8.3f}")
    print(f"  truth{'':<24}{TRUE[0]:>8.3f}{TRUE[1]:>8.2f}{TRUE[2]:>8.3f}{TRUE[3]:>8.3f}")


if __name__ == "__main__":
    main()
