"""Tests of the MovieLens parsers, on small fixture files and, when present, the real ml-100k."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp.importers.common import ImportFormatError, ImportSummary, Rejected, count_lines
from cdp.importers.movielens import (
    ML100K_GENRES,
    Item,
    Rating,
    detect_layout,
    rating_line_count,
    read_items,
    read_ratings,
)

DATA_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data"
ML100K_DIR = DATA_DIR / "movielens-100k"


def _u_item_line(item_id: str, title: str, release_date: str, genres: set[str]) -> str:
    flags = ["1" if name in genres else "0" for name in ML100K_GENRES]
    return "|".join([item_id, title, release_date, "", "http://example.invalid/", *flags])


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-100k"
    directory.mkdir()
    items = [
        _u_item_line("1", "Toy Story (1995)", "01-Jan-1995", {"Animation", "Children's", "Comedy"}),
        _u_item_line("2", "Misérables, Les (1995)", "01-Jan-1995", {"Drama", "Musical"}),
        _u_item_line("3", "No Year In Title", "12-Mar-1997", {"Thriller"}),
        _u_item_line("4", "unknown", "", {"unknown"}),
        "5|Too Few Fields|01-Jan-1995",
        _u_item_line("six", "Bad Id (1990)", "", {"Drama"}),
    ]
    # u.item is Latin-1 in the GroupLens release.
    (directory / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (directory / "u.genre").write_text("".join(f"{name}|{index}\n" for index, name in enumerate(ML100K_GENRES)) + "\n")
    ratings = [
        "196\t1\t3\t881250949",  # 1
        "186\t2\t5\t891717742",  # 2
        "",  # 3: blank, skipped
        "22\t3\t1",  # 4: too few fields
        "22\t3\t4\tyesterday",  # 5
        "22\t3\t6\t881250949",  # 6
        "22\t99\t4\t881250949",  # 7: item 99 is not in u.item
        "x\t3\t4\t881250949",  # 8
        "22\t3\tgood\t881250949",  # 9
        "244\t4\t2\t880606923",  # 10
    ]
    (directory / "u.data").write_text("\n".join(ratings) + "\n")
    return directory


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ml-latest-small"
    directory.mkdir()
    (directory / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "20,Babylon 5,(no genres listed)\n"
        '30,"Show, The (2006–2007)",Comedy\n'
        "40,Only Two Fields\n"
        "abc,Bad Id (2000),Drama\n",
        encoding="utf-8",
    )
    (directory / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"  # 2
        "1,11,0.5,964981247\n"  # 3
        "\n"  # 4: blank, skipped
        "2,20,5.5,964982224\n"  # 5
        "2,30,0.0,964982224\n"  # 6
        "2,404,3.5,964982224\n"  # 7
        "3,1,3.5,not-a-time\n"  # 8
        "3,1,3.5\n"  # 9
        "3,1,nan,964982224\n"  # 10
        "4,30,2.5,1217897793\n",  # 11
        encoding="utf-8",
    )
    return directory


def _split(results: Iterator[Item | Rating | Rejected]) -> tuple[list, list[Rejected]]:
    loaded, rejected = [], []
    for result in results:
        (rejected if isinstance(result, Rejected) else loaded).append(result)
    return loaded, rejected


# -- layout -----------------------------------------------------------------------------


def test_detect_layout_recognises_both_layouts(ml100k_dir: Path, csv_dir: Path) -> None:
    assert detect_layout(ml100k_dir) == "ml100k"
    assert detect_layout(str(csv_dir)) == "csv"


def test_detect_layout_names_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t1\t1\t1\n")
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")

    with pytest.raises(ImportFormatError, match=r"has neither u\.data\+u\.item nor ratings\.csv\+movies\.csv\."):
        detect_layout(tmp_path)


def test_detect_layout_rejects_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="is not a directory"):
        detect_layout(tmp_path / "nowhere")


def test_a_missing_header_column_fails_at_the_call_not_mid_stream(csv_dir: Path) -> None:
    (csv_dir / "ratings.csv").write_text("userId,itemId,rating,timestamp\n1,1,4.0,964982703\n")

    with pytest.raises(ImportFormatError, match="lacks the column"):
        read_ratings(csv_dir)


# -- ml-100k layout ----------------------------------------------------------------------


def test_ml100k_items_carry_genres_year_and_latin1_titles(ml100k_dir: Path) -> None:
    items, rejected = _split(read_items(ml100k_dir))

    by_id = {item.id: item for item in items}
    assert by_id["1"] == Item(
        id="1",
        title="Toy Story (1995)",
        category="Animation",
        description="Animation, Children's, Comedy (1995)",
        attributes={"genres": ["Animation", "Children's", "Comedy"], "year": 1995},
    )
    assert by_id["2"].title == "Misérables, Les (1995)"
    assert by_id["3"].attributes["year"] == 1997  # from the release date when the title has none
    assert by_id["4"].category == "unknown"
    assert by_id["4"].attributes == {"genres": [], "year": None}
    assert rejected == [Rejected(5, "u.item", "malformed_row"), Rejected(6, "u.item", "malformed_row")]


def test_ml100k_ratings_stream_with_reasons_for_bad_lines(ml100k_dir: Path) -> None:
    ratings, rejected = _split(read_ratings(ml100k_dir))

    assert ratings[0] == Rating(
        user_id="196", item_id="1", rating=3.0, occurred_at=datetime(1997, 12, 4, 15, 55, 49, tzinfo=UTC)
    )
    assert [(rating.user_id, rating.item_id) for rating in ratings] == [("196", "1"), ("186", "2"), ("244", "4")]
    assert rejected == [
        Rejected(4, "u.data", "malformed_row"),
        Rejected(5, "u.data", "bad_timestamp"),
        Rejected(6, "u.data", "rating_out_of_range"),
        Rejected(7, "u.data", "unknown_item"),
        Rejected(8, "u.data", "malformed_row"),
        Rejected(9, "u.data", "malformed_row"),
    ]


def test_ratings_use_the_given_item_ids_instead_of_reading_items(ml100k_dir: Path) -> None:
    ratings, rejected = _split(read_ratings(ml100k_dir, known_item_ids={"2"}))

    assert [rating.item_id for rating in ratings] == ["2"]
    assert sum(reason.reason == "unknown_item" for reason in rejected) == 3


def test_u_genre_is_optional(ml100k_dir: Path) -> None:
    (ml100k_dir / "u.genre").unlink()

    items, _ = _split(read_items(ml100k_dir))

    assert items[0].attributes["genres"] == ["Animation", "Children's", "Comedy"]


def test_rating_line_count_matches_what_the_stream_yields(ml100k_dir: Path) -> None:
    assert rating_line_count(ml100k_dir) == 9 == len(list(read_ratings(ml100k_dir)))


# -- csv layout ------------------------------------------------------------------------


def test_csv_items_handle_quoted_titles_and_no_genres(csv_dir: Path) -> None:
    items, rejected = _split(read_items(csv_dir))

    by_id = {item.id: item for item in items}
    assert by_id["1"].category == "Adventure"
    assert by_id["1"].attributes == {
        "genres": ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        "year": 1995,
    }
    assert by_id["11"].title == "American President, The (1995)"
    assert by_id["11"].description == "Comedy, Drama, Romance (1995)"
    assert by_id["20"].category == "unknown"
    assert by_id["20"].attributes == {"genres": [], "year": None}
    assert by_id["30"].attributes["year"] == 2006
    assert rejected == [Rejected(6, "movies.csv", "malformed_row"), Rejected(7, "movies.csv", "malformed_row")]


def test_csv_ratings_stream_with_reasons_for_bad_lines(csv_dir: Path) -> None:
    ratings, rejected = _split(read_ratings(csv_dir))

    assert [(rating.user_id, rating.item_id, rating.rating) for rating in ratings] == [
        ("1", "1", 4.0),
        ("1", "11", 0.5),
        ("4", "30", 2.5),
    ]
    assert ratings[0].occurred_at == datetime(2000, 7, 30, 18, 45, 3, tzinfo=UTC)
    assert rejected == [
        Rejected(5, "ratings.csv", "rating_out_of_range"),
        Rejected(6, "ratings.csv", "rating_out_of_range"),
        Rejected(7, "ratings.csv", "unknown_item"),
        Rejected(8, "ratings.csv", "bad_timestamp"),
        Rejected(9, "ratings.csv", "malformed_row"),
        Rejected(10, "ratings.csv", "malformed_row"),
    ]
    assert rating_line_count(csv_dir) == len(ratings) + len(rejected)


def test_csv_columns_are_found_by_name_and_a_bom_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "movies.csv").write_bytes("\ufefftitle,genres,movieId\nHeat (1995),Action|Crime,6\n".encode())
    (tmp_path / "ratings.csv").write_text("timestamp,rating,movieId,userId\n964982703,4.5,6,7\n")

    [item] = read_items(tmp_path)
    [rating] = read_ratings(tmp_path)

    assert (item.id, item.title, item.category) == ("6", "Heat (1995)", "Action")
    assert (rating.user_id, rating.item_id, rating.rating) == ("7", "6", 4.5)


def test_ratings_are_read_lazily(csv_dir: Path) -> None:
    results = read_ratings(csv_dir)

    assert isinstance(results, Iterator)
    assert isinstance(next(results), Rating)


# -- the real data set ---------------------------------------------------------------------


@pytest.fixture
def real_ml100k() -> Path:
    if not (ML100K_DIR / "u.data").is_file():
        pytest.skip(f"the MovieLens 100k data set is not at {ML100K_DIR}")
    return ML100K_DIR


def test_real_ml100k_loads_every_item_and_rating(real_ml100k: Path) -> None:
    summary = ImportSummary()
    item_ids = {result.id for result in summary.track(read_items(real_ml100k)) if isinstance(result, Item)}
    ratings = summary.track(read_ratings(real_ml100k, known_item_ids=item_ids))
    users = {rating.user_id for rating in ratings if isinstance(rating, Rating)}

    assert summary.loaded == {"item": 1682, "rating": 100_000}
    assert summary.rejected_total == 0
    assert len(users) == 943
    assert count_lines(real_ml100k / "u.data") == 100_000
