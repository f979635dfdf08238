"""`evaluate_segmentation --format transactions --path FILE_OR_DIR [--seeds 42,1,2]`: one JSON document."""

from __future__ import annotations

import json

from django.core.management.base import CommandError

from cdp.importers.common import ImportFormatError
from cdp.importers.transactions import data_line_count
from cdp.management.base import TesseraCommand
from personalization.segmentation import NotEnoughData
from personalization.services.segment_evaluation import segmentation_evaluate


class Command(TesseraCommand):
    help = "RFM + K-Means on a transactions file or directory: quality, sizes and stability across seeds."
    requires_system_checks: list = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=["transactions"])
        parser.add_argument("--path", required=True, help="A CSV file or a directory of CSV files.")
        parser.add_argument("--seeds", default="42,1,2,3,4", help="Comma-separated seeds (default 42,1,2,3,4).")
        parser.add_argument("--timezone", default="Europe/London", help="Zone of the InvoiceDate values.")

    def handle(self, *args, path: str, seeds: str, timezone: str, **options):
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise CommandError("--seeds must be comma-separated whole numbers, such as 42,1,2.") from None
        if not seed_list:
            raise CommandError("--seeds needs at least one seed.")
        try:
            total = data_line_count(path)
            with self.progress(total=total, unit="line", desc="Reading transactions") as bar:
                result = segmentation_evaluate(path=path, seeds=seed_list, timezone=timezone,
                                               on_progress=bar.update)
        except (ImportFormatError, OSError) as error:
            raise CommandError(str(error)) from None
        except NotEnoughData as error:
            raise CommandError(str(error)) from None
        self.stdout.write(json.dumps(result, sort_keys=True))
