"""`evaluate_clv --format transactions|purchases --path FILE_OR_DIR --calibration-end YYYY-MM-DD
[--horizon-days N]`: one JSON document (CONTRACT.md)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from django.core.management.base import CommandError

from cdp.importers import purchases, transactions
from cdp.importers.common import ImportFormatError
from cdp.management.base import TesseraCommand
from personalization.predictive.data import FORMATS, purchase_log_read
from personalization.predictive.evaluation import EvaluationError, clv_evaluate


class Command(TesseraCommand):
    help = "Fit the churn/CLV models on a calibration period and score them, and two baselines, on the holdout."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS)
        parser.add_argument("--path", required=True, help="A file or a directory of files.")
        parser.add_argument("--calibration-end", required=True, help="Last day of the calibration period.")
        parser.add_argument("--horizon-days", type=int, default=None,
                            help="Holdout length in days (default: to the end of the data).")
        parser.add_argument("--timezone", default=transactions.DEFAULT_TIMEZONE,
                            help="Zone of the transactions' InvoiceDate values.")

    def handle(self, *args, path: str, calibration_end: str, horizon_days: int | None, timezone: str, **options):
        fmt = options["format"]
        try:
            end = date.fromisoformat(calibration_end)
        except ValueError:
            raise CommandError("--calibration-end must be a date written YYYY-MM-DD.") from None
        if horizon_days is not None and horizon_days <= 0:
            raise CommandError("--horizon-days must be a positive whole number.")
        try:
            counter = transactions.data_line_count if fmt == "transactions" else purchases.data_line_count
            with self.progress(total=counter(path), unit="line", desc="Reading purchases") as bar:
                log = purchase_log_read(fmt=fmt, path=path, timezone=timezone, on_progress=bar.update)
            result = clv_evaluate(log, calibration_end=end, horizon_days=horizon_days, dataset=Path(path).name,
                                  fmt=fmt)
        except (ImportFormatError, EvaluationError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(result, sort_keys=True))
