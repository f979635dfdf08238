"""Streaming parser for retail transaction exports shaped like the UCI "Online Retail" set.

Columns (by header name, any order): InvoiceNo, StockCode, Description, Quantity,
InvoiceDate, UnitPrice, CustomerID, Country. InvoiceDate is local time without a zone,
written "2010-12-01 08:26:00" (the by-day split) or "12/1/2010 8:26" (the original
spreadsheet export). Files are UTF-8 or Windows-1252.

Each line becomes a `Purchase` or a `Rejected` with the first reason that applies, in
this order: malformed_row, cancellation, non_product_code, non_positive_quantity,
non_positive_price, missing_customer_id.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdp.importers.common import ImportFormatError, Rejected, Row, count_lines, decoded_lines, input_files

DEFAULT_TIMEZONE = "Europe/London"  # the UCI retailer is UK-based
COLUMNS = ("InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country")

# Stock codes that are charges, adjustments or vouchers rather than products:
# postage and carriage, discounts, manual corrections, bank and marketplace fees,
# samples, bad debt, charity commission, cushion pads sold at a token price.
NON_PRODUCT_CODES = frozenset(
    {"POST", "DOT", "C2", "D", "M", "S", "B", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS"}
)  # fmt: skip
GIFT_VOUCHER_PREFIX = "GIFT_"  # gift_0001_20 and the like

DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S")
FLOAT_FORMATTED_ID = re.compile(r"^(\d+)\.0*$")  # "17850.0": pandas wrote the ids as floats


@dataclass(frozen=True, slots=True)
class Purchase(Row):
    kind: ClassVar[str] = "purchase"

    invoice: str
    stock_code: str
    description: str
    quantity: int
    unit_price: Decimal
    occurred_at: datetime  # aware, UTC
    customer_id: str
    country: str


class _RowError(Exception):
    """A line cannot be loaded; carries the rejection reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- files ----------------------------------------------------------------------------


def transaction_files(path: Path | str) -> list[Path]:
    """The CSV files to read: the file itself, or a directory's *.csv sorted by name."""
    return input_files(path, (".csv",))


def data_line_count(path: Path | str) -> int:
    """The number of transaction lines to expect (headers excluded), for a progress bar."""
    return sum(max(count_lines(file) - 1, 0) for file in transaction_files(path))


def read_transactions(path: Path | str, *, timezone: str = DEFAULT_TIMEZONE) -> Iterator[Purchase | Rejected]:
    """Stream the lines of a transaction file, or of a directory of them, as results.

    The time zone and every file's header are checked before the first result, so a
    bad option or a wrong file fails at the call, not halfway through an import.
    """
    zone = _zone(timezone)
    files = transaction_files(path)
    for file in files:
        _require_columns(file)
    return _read_files(files, zone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFormatError(f"{name!r} is not a known time zone.") from None


def _require_columns(file: Path) -> None:
    first_line = next(decoded_lines(file), "")
    header = {name.strip() for name in next(csv.reader([first_line]), [])}
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise ImportFormatError(f"{file} lacks the column(s) {', '.join(missing)} in its header.")


def _read_files(files: list[Path], zone: ZoneInfo) -> Iterator[Purchase | Rejected]:
    for file in files:
        yield from _read_file(file, zone)


def _read_file(file: Path, zone: ZoneInfo) -> Iterator[Purchase | Rejected]:
    reader = csv.reader(decoded_lines(file))
    header = [name.strip() for name in next(reader)]
    positions = [header.index(column) for column in COLUMNS]
    for fields in reader:
        if not any(value.strip() for value in fields):
            continue
        try:
            if len(fields) != len(header):
                raise _RowError("malformed_row")
            yield _purchase([fields[position].strip() for position in positions], zone)
        except _RowError as error:
            yield Rejected(reader.line_num, file.name, error.reason)


# -- lines ----------------------------------------------------------------------------


def _purchase(fields: list[str], zone: ZoneInfo) -> Purchase:
    invoice, stock_code, description, quantity_text, date_text, price_text, customer_text, country = fields
    if not invoice or not stock_code:
        raise _RowError("malformed_row")
    quantity = _parse_quantity(quantity_text)
    unit_price = _parse_price(price_text)
    occurred_at = _parse_local_time(date_text, zone)
    customer_id = _normalise_customer_id(customer_text)

    if invoice.upper().startswith("C"):
        raise _RowError("cancellation")
    if _is_non_product(stock_code):
        raise _RowError("non_product_code")
    if quantity <= 0:
        raise _RowError("non_positive_quantity")
    if unit_price <= 0:
        raise _RowError("non_positive_price")
    # Checked last so that its count measures genuine sales that no customer can claim.
    if not customer_id:
        raise _RowError("missing_customer_id")
    return Purchase(
        invoice=invoice,
        stock_code=stock_code,
        description=description,
        quantity=quantity,
        unit_price=unit_price,
        occurred_at=occurred_at,
        customer_id=customer_id,
        country=country,
    )


def _is_non_product(stock_code: str) -> bool:
    code = stock_code.upper()  # the data has both "M" and "m" for manual lines
    return code in NON_PRODUCT_CODES or code.startswith(GIFT_VOUCHER_PREFIX)


def _normalise_customer_id(text: str) -> str:
    match = FLOAT_FORMATTED_ID.match(text)
    return match.group(1) if match else text


def _parse_quantity(text: str) -> int:
    value = _parse_decimal(text)
    if value != value.to_integral_value():
        raise _RowError("malformed_row")
    return int(value)


def _parse_price(text: str) -> Decimal:
    return _parse_decimal(text)


def _parse_decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise _RowError("malformed_row") from None
    if not value.is_finite():
        raise _RowError("malformed_row")
    return value


def _parse_local_time(text: str, zone: ZoneInfo) -> datetime:
    try:
        return _local_time_to_utc(text, zone)
    except ValueError:
        raise _RowError("malformed_row") from None


@lru_cache(maxsize=4096)
def _local_time_to_utc(text: str, zone: ZoneInfo) -> datetime:
    """Convert a zone-less local time to UTC; cached because an invoice's lines share one.

    Times in the spring-forward gap or the autumn overlap resolve as zoneinfo's fold=0
    does (the offset in force before the change); a shop's trading hours avoid both.
    """
    for date_format in DATE_FORMATS:
        try:
            local = datetime.strptime(text, date_format)
        except ValueError:
            continue
        return local.replace(tzinfo=zone).astimezone(UTC)
    raise ValueError(f"unrecognised date {text!r}")
