"""Outages, measured: the fault suite's scenarios (tests/faults/harness.py) with their figures.

    python bench/faults.py                 # every scenario
    python bench/faults.py --only redis    # redis | postgres | runserver | pipeline
    options: --batches N --down-seconds S (PostgreSQL restart), --requests N (runserver)

Everything runs on private ports in a temporary directory: its own PostgreSQL cluster
and Redis, the product under gunicorn (DEBUG off) and, where needed, a Celery worker with
beat. For each scenario: requests accepted during the outage, answers by status code,
records lost and duplicated, and the time to recover. Figures are printed, never asserted
(tests/faults asserts them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "faults"))

import harness  # noqa: E402

SCENARIOS = ("redis", "postgres", "runserver", "pipeline")


def run(name: str, product: harness.Product, args) -> harness.Report:
    saved = dict(product.env)
    try:
        if name == "redis":
            product.env["DEBUG"] = "true"  # the receiver is plain http, which production refuses
            product.serve(workers=2)
            product.work()
            return harness.redis_outage(product)
        if name == "postgres":
            product.serve(workers=2)
            return harness.postgres_restart(product, batches=args.batches, down_seconds=args.down_seconds)
        if name == "runserver":
            product.runserver()
            return harness.runserver_connections(product, requests=args.requests)
        product.env.update({"TESSERA_PIPELINE_STALL_SECONDS": "6", "TESSERA_PIPELINE_WATCHDOG_SECONDS": "2"})
        product.work()
        return harness.broker_away_during_pipeline(product)
    finally:
        product.stop()
        product.processes.clear()
        product.env.clear()
        product.env.update(saved)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=SCENARIOS)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--down-seconds", type=float, default=2.0)
    parser.add_argument("--requests", type=int, default=150)
    args = parser.parse_args()
    try:
        product, cleanup = harness.environment()
    except harness.Unavailable as missing:
        sys.exit(f"This benchmark needs {missing}.")
    try:
        for name in [args.only] if args.only else SCENARIOS:
            report = run(name, product, args)
            print(report.line())
            for key, value in report.notes.items():
                if isinstance(value, dict):
                    value = {k: dict(v) if hasattr(v, "items") else v for k, v in value.items()}
                print(f"    {key}: {value}")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
