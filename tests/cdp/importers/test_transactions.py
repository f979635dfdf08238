"""Tests of the retail transaction parser, on small fixture files and, when present, UCI Online Retail."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cdp.importers.common import ImportFormatError, ImportSummary, Rejected, count_lines
from cdp.importers.transactions import Purchase, data_line_count, read_transactions, transaction_files

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
RETAIL_DIR = DATA_DIR / "online-retail-uci" / "by-day"

HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"

# Line numbers count the header as line 1.
RETAIL_LINES = [
    "536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom",  # 2
    '536381,82567,"AIRLINE LOUNGE,METAL SIGN",2,2010-12-01 09:41:00,2.1,15311.0,United Kingdom',  # 3
    "C536379,D,Discount,-1,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",  # 4
    '536544,22760,"TRAY, BREAKFAST IN BED",1,2010-12-01 14:32:00,25.49,,United Kingdom',  # 5
    "536370,POST,POSTAGE,3,2010-12-01 08:45:00,18.0,12583.0,France",  # 6
    "539492,gift_0001_40,Dotcomgiftshop Gift Voucher £40.00,1,2010-12-20 10:14:00,34.04,17850.0,United Kingdom",  # 7
    "536589,21777,damaged,-10,2010-12-01 16:50:00,0.0,17850.0,United Kingdom",  # 8
    "536414,22139,,56,2010-12-01 11:52:00,0.0,17850.0,United Kingdom",  # 9
    "A563185,22000,Adjust bad debt,1,2011-08-12 14:50:00,-11062.06,17850.0,United Kingdom",  # 10
    "536365,71053,WHITE METAL LANTERN,6,yesterday,3.39,17850.0,United Kingdom",  # 11
    "536365,71053,WHITE METAL LANTERN,six,2010-12-01 08:26:00,3.39,17850.0,United Kingdom",  # 12
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,NaN,17850.0,United Kingdom",  # 13
    "536365,71053,WHITE METAL LANTERN,6,2010-12-01 08:26:00,3.39,17850.0",  # 14
    "",  # 15: blank, skipped
    "540001,m,Manual,1,2011-01-04 10:00:00,1.0,17850.0,United Kingdom",  # 16
    "C536391,22556,PLASTERS IN TIN CIRCUS PARADE,-12,2010-12-01 10:24:00,1.65,,United Kingdom",  # 17
    "554000,22423,REGENCY CAKESTAND 3 TIER,1,2011-06-01 08:26:00,12.75,12346,United Kingdom",  # 18
]


def _write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes((HEADER + "".join(line + "\n" for line in lines)).encode(encoding))
    return path


@pytest.fixture
def retail_csv(tmp_path: Path) -> Path:
    return _write(tmp_path / "retail.csv", RETAIL_LINES)


def _split(results: Iterator[Purchase | Rejected]) -> tuple[list[Purchase], list[Rejected]]:
    loaded: list[Purchase] = []
    rejected: list[Rejected] = []
    for result in results:
        (rejected if isinstance(result, Rejected) else loaded).append(result)
    return loaded, rejected


def test_good_lines_become_purchases_with_normalised_fields(retail_csv: Path) -> None:
    purchases, _ = _split(read_transactions(retail_csv))

    assert purchases[0] == Purchase(
        invoice="536365",
        stock_code="85123A",
        description="WHITE HANGING HEART T-LIGHT HOLDER",
        quantity=6,
        unit_price=Decimal("2.55"),
        occurred_at=datetime(2010, 12, 1, 8, 26, tzinfo=UTC),  # London is on GMT in December
        customer_id="17850",  # from "17850.0"
        country="United Kingdom",
    )
    assert purchases[1].description == "AIRLINE LOUNGE,METAL SIGN"
    assert [purchase.invoice for purchase in purchases] == ["536365", "536381", "554000"]


def test_summer_times_are_converted_from_british_summer_time(retail_csv: Path) -> None:
    purchases, _ = _split(read_transactions(retail_csv))

    assert purchases[-1].occurred_at == datetime(2011, 6, 1, 7, 26, tzinfo=UTC)
    assert purchases[-1].customer_id == "12346"


def test_bad_lines_are_rejected_with_a_reason(retail_csv: Path) -> None:
    _, rejected = _split(read_transactions(retail_csv))

    assert rejected == [
        Rejected(4, "retail.csv", "cancellation"),
        Rejected(5, "retail.csv", "missing_customer_id"),
        Rejected(6, "retail.csv", "non_product_code"),
        Rejected(7, "retail.csv", "non_product_code"),
        Rejected(8, "retail.csv", "non_positive_quantity"),
        Rejected(9, "retail.csv", "non_positive_price"),
        Rejected(10, "retail.csv", "non_positive_price"),
        Rejected(11, "retail.csv", "malformed_row"),
        Rejected(12, "retail.csv", "malformed_row"),
        Rejected(13, "retail.csv", "malformed_row"),
        Rejected(14, "retail.csv", "malformed_row"),
        Rejected(16, "retail.csv", "non_product_code"),
        Rejected(17, "retail.csv", "cancellation"),  # a cancellation even without a customer
    ]


def test_summary_counts_agree_with_the_line_count(retail_csv: Path) -> None:
    summary = ImportSummary()
    for _ in summary.track(read_transactions(retail_csv)):
        pass

    assert summary.loaded == {"purchase": 3}
    assert summary.rejected == {
        "cancellation": 2,
        "missing_customer_id": 1,
        "non_product_code": 3,
        "non_positive_quantity": 1,
        "non_positive_price": 2,
        "malformed_row": 4,
    }
    assert summary.total == data_line_count(retail_csv) == count_lines(retail_csv) - 1


def test_spreadsheet_export_dates_and_windows_1252_are_understood(tmp_path: Path) -> None:
    lines = ["536365,85123A,HEART £ HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom"]
    path = _write(tmp_path / "Online Retail.csv", lines, encoding="cp1252")

    [purchase] = read_transactions(path)

    assert purchase.description == "HEART £ HOLDER"
    assert purchase.occurred_at == datetime(2010, 12, 1, 8, 26, tzinfo=UTC)


def test_the_timezone_option_sets_the_zone_of_invoice_dates(retail_csv: Path) -> None:
    first = next(read_transactions(retail_csv, timezone="America/New_York"))

    assert first.occurred_at == datetime(2010, 12, 1, 13, 26, tzinfo=UTC)


def test_a_directory_is_read_file_by_file_in_name_order(tmp_path: Path) -> None:
    _write(tmp_path / "2010-12-02.csv", ["536600,22423,CAKESTAND,1,2010-12-02 09:00:00,12.75,12346.0,France"])
    _write(tmp_path / "2010-12-01.csv", ["536365,85123A,HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom", ""])
    (tmp_path / "README.md").write_text("not data\n")

    results = list(read_transactions(tmp_path))

    assert [file.name for file in transaction_files(tmp_path)] == ["2010-12-01.csv", "2010-12-02.csv"]
    assert [result.invoice for result in results if isinstance(result, Purchase)] == ["536365", "536600"]
    assert data_line_count(tmp_path) == len(results) == 2


def test_rejections_name_the_file_they_come_from(tmp_path: Path) -> None:
    _write(tmp_path / "a.csv", ["536365,85123A,HOLDER,6,2010-12-01 08:26:00,2.55,17850.0,United Kingdom"])
    _write(tmp_path / "b.csv", ["C536366,85123A,HOLDER,-6,2010-12-01 08:30:00,2.55,17850.0,United Kingdom"])

    assert list(read_transactions(tmp_path))[1] == Rejected(2, "b.csv", "cancellation")


def test_columns_are_found_by_name_and_a_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "reordered.csv"
    path.write_bytes(
        "\ufeffCountry,CustomerID,UnitPrice,InvoiceDate,Quantity,Description,StockCode,InvoiceNo\n"
        "France,12583.0,3.75,2010-12-01 08:45:00,24,ALARM CLOCK,22728,536370\n".encode()
    )

    [purchase] = read_transactions(path)

    assert (purchase.invoice, purchase.stock_code, purchase.quantity, purchase.country) == (
        "536370",
        "22728",
        24,
        "France",
    )


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda tmp: tmp / "missing.csv", "is neither a file nor a directory"),
        (lambda tmp: tmp, "contains no .csv files"),
        (lambda tmp: _write_text(tmp / "x.csv", "InvoiceNo,StockCode\n1,2\n"), "lacks the column"),
        (lambda tmp: _write_text(tmp / "x.csv", ""), "lacks the column"),
    ],
)
def test_unusable_input_fails_at_the_call(tmp_path: Path, setup, message: str) -> None:
    with pytest.raises(ImportFormatError, match=message):
        read_transactions(setup(tmp_path))


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_an_unknown_timezone_fails_at_the_call(retail_csv: Path) -> None:
    with pytest.raises(ImportFormatError, match="not a known time zone"):
        read_transactions(retail_csv, timezone="Mars/Olympus_Mons")


# -- the real data set ---------------------------------------------------------------------


@pytest.fixture
def real_retail_dir() -> Path:
    if not RETAIL_DIR.is_dir():
        pytest.skip(f"the UCI Online Retail by-day files are not at {RETAIL_DIR}")
    return RETAIL_DIR


@pytest.mark.slow
def test_real_retail_every_line_is_loaded_or_rejected(real_retail_dir: Path) -> None:
    summary = ImportSummary()
    customers: set[str] = set()
    for result in summary.track(read_transactions(real_retail_dir)):
        if isinstance(result, Purchase):
            assert result.quantity > 0 and result.unit_price > 0
            assert result.customer_id.isdigit()
            customers.add(result.customer_id)

    assert summary.total == data_line_count(real_retail_dir) == 541_909  # the count UCI publishes
    assert summary.rejected["cancellation"] > 0
    assert summary.rejected["missing_customer_id"] > 0
    assert summary.rejected["malformed_row"] == 0
    assert summary.loaded["purchase"] > summary.rejected_total
    assert 4_000 < len(customers) <= 4_372  # identified customers, less those who only cancelled
