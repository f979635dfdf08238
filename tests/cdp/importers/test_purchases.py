"""The `purchases` shape: customer_id date quantity amount, whitespace or commas."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from cdp.importers.common import ImportFormatError, Rejected
from cdp.importers.purchases import PurchaseLine, read_purchases


def lines(tmp_path, text: bytes, name: str = "p.txt") -> list:
    path = tmp_path / name
    path.write_bytes(text)
    return list(read_purchases(path))


def test_cdnow_layout_with_leading_spaces_and_crlf(tmp_path):
    rows = lines(tmp_path, b"   00001 19970101  1   11.77\r\n   00002 19970112  1   12.00\r\n\r\n")
    assert rows == [
        PurchaseLine("00001", datetime(1997, 1, 1, tzinfo=UTC), 1, Decimal("11.77")),
        PurchaseLine("00002", datetime(1997, 1, 12, tzinfo=UTC), 1, Decimal("12.00")),
    ]


def test_commas_a_header_and_iso_dates(tmp_path):
    rows = lines(tmp_path, b"customer_id,date,quantity,amount\n7,2020-03-04,2,9.50\n7,2020-03-05T10:00:00+02:00,1,3\n")
    assert [(r.customer_id, r.occurred_at, r.quantity, r.amount) for r in rows] == [
        ("7", datetime(2020, 3, 4, tzinfo=UTC), 2, Decimal("9.50")),
        ("7", datetime(2020, 3, 5, 8, tzinfo=UTC), 1, Decimal("3")),
    ]


def test_bad_lines_are_rejected_with_a_reason_and_the_rest_kept(tmp_path):
    rows = lines(tmp_path, b"1 19970101 1 5\n2 19971341 1 5\n3 19970101 0 5\n4 19970101 1 -2\n5 19970101 1\n"
                           b"6 19970101 1.5 5\n7 19970102 1 0\n")
    assert [r.reason for r in rows if isinstance(r, Rejected)] == [
        "malformed_row", "non_positive_quantity", "negative_amount", "malformed_row", "malformed_row"]
    assert [r.customer_id for r in rows if isinstance(r, PurchaseLine)] == ["1", "7"]


def test_a_directory_and_missing_paths(tmp_path):
    (tmp_path / "a.txt").write_text("1 19970101 1 5\n")
    (tmp_path / "b.csv").write_text("2,19970101,1,5\n")
    (tmp_path / "notes.md").write_text("not data")
    assert [r.customer_id for r in read_purchases(tmp_path)] == ["1", "2"]
    with pytest.raises(ImportFormatError, match="neither a file nor a directory"):
        read_purchases(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportFormatError, match="contains no"):
        read_purchases(tmp_path / "empty")
