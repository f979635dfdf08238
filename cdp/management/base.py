"""A base for our commands: known failures end as one plain sentence and exit 1."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from cdp.core.errors import ApplicationError, ConfigurationError


class TesseraCommand(BaseCommand):
    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except (ApplicationError, ConfigurationError) as error:
            raise CommandError(str(error)) from None

    def progress(self, *, total: int | None, unit: str, desc: str):
        # Progress goes to stderr; stdout keeps only the machine-readable result.
        return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True,
                    disable=None, mininterval=0.5)
