"""A base for our commands: known failures end as one plain sentence and exit 1."""

from __future__ import annotations

import sys
import time

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
        # Progress goes to stderr; stdout keeps only the machine-readable result. A bar on
        # a terminal; elsewhere (a log, ./dev run's output in CI) a plain line now and then.
        if sys.stderr.isatty():
            return tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, dynamic_ncols=True, mininterval=0.5)
        return LineProgress(total=total, unit=unit, desc=desc)


class LineProgress:
    """tqdm's update/close for a stream that is not a terminal: one line a step (at most
    every `every` seconds), and one at the end."""

    def __init__(self, *, total: int | None, unit: str, desc: str, every: float = 5.0, stream=None):
        self.total, self.unit, self.desc, self.every = total, unit, desc, every
        self.stream = stream or sys.stderr
        self.n, self.started, self.last, self.postfix = 0, time.monotonic(), float("-inf"), ""

    def update(self, n: int = 1) -> None:
        self.n += n
        if time.monotonic() - self.last >= self.every:
            self._line()

    def set_description(self, desc: str) -> None:
        self.desc = desc

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def _line(self) -> None:
        self.last = time.monotonic()
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        postfix = f" ({self.postfix})" if self.postfix else ""
        self.stream.write(f"{self.desc}: {done} {self.unit}s{postfix}, {self.last - self.started:.0f} s\n")
        self.stream.flush()

    def close(self) -> None:
        if self.last < self.started or self.n and time.monotonic() > self.last:
            self._line()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
