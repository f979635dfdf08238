"""Streaming parser for the `purchases` shape most public CLV data sets come in (CDNOW and kin).

One line per purchase: `customer_id date quantity amount`, separated by whitespace or
commas, with leading spaces, CRLF or LF line ends and an optional header line. Dates are
`YYYYMMDD` or ISO 8601 (a time part is allowed and kept, read as UTC). `amount` is what
the whole line cost. A file or every `*.txt`, `*.csv` and `*.tsv` file of a directory.

Each line becomes a `PurchaseLine` or a `Rejected` with the first reason that applies:
malformed_row, non_positive_quantity, negative_amount.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import ClassVar

from cdp.importers.common import Rejected, Row, count_lines, decoded_lines, input_files

SEPARATORS = re.compile(r"[,\s;]+")
SUFFIXES = (".txt", ".csv", ".tsv", ".dat")


@dataclass(frozen=True, slots=True)
class PurchaseLine(Row):
    kind: ClassVar[str] = "purchase"

    customer_id: str
    occurred_at: datetime  # aware, UTC
    quantity: int
    amount: Decimal


def purchase_files(path: Path | str) -> list[Path]:
    return input_files(path, SUFFIXES)


def data_line_count(path: Path | str) -> int:
    return sum(count_lines(file) for file in purchase_files(path))


def read_purchases(path: Path | str) -> Iterator[PurchaseLine | Rejected]:
    """Stream the purchase lines of a file or directory (files are checked before the first)."""
    return _read_files(purchase_files(path))


def _read_files(files: list[Path]) -> Iterator[PurchaseLine | Rejected]:
    for file in files:
        first = True
        for number, line in enumerate(decoded_lines(file), start=1):
            text = line.strip().strip("\ufeff")
            if not text:
                continue
            fields = [f.strip().strip('"') for f in SEPARATORS.split(text)]
            if first:
                first = False
                if _is_header(fields):
                    continue
            yield _line(fields, number, file.name)


def _is_header(fields: list[str]) -> bool:
    """A first line whose date and amount are not a date and a number names the columns."""
    return len(fields) < 2 or (_date(fields[1]) is None and not _number(fields[-1]))


def _line(fields: list[str], number: int, name: str) -> PurchaseLine | Rejected:
    if len(fields) != 4 or not fields[0]:
        return Rejected(number, name, "malformed_row")
    customer, date_text, quantity_text, amount_text = fields
    occurred_at = _date(date_text)
    quantity = _decimal(quantity_text)
    amount = _decimal(amount_text)
    if occurred_at is None or quantity is None or amount is None or quantity != quantity.to_integral_value():
        return Rejected(number, name, "malformed_row")
    if quantity <= 0:
        return Rejected(number, name, "non_positive_quantity")
    if amount < 0:
        return Rejected(number, name, "negative_amount")
    customer = re.sub(r"^(\d+)\.0*$", r"\1", customer)  # "17850.0": ids written as floats
    return PurchaseLine(customer_id=customer, occurred_at=occurred_at,
                        quantity=int(quantity), amount=amount)


def _date(text: str) -> datetime | None:
    try:
        if len(text) == 8 and text.isdigit():
            return datetime.strptime(text, "%Y%m%d").replace(tzinfo=UTC)
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _number(text: str) -> bool:
    return _decimal(text) is not None
