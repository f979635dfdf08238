"""Streaming parsers for MovieLens rating data sets, in either of GroupLens's layouts.

- "ml100k": u.data (user \\t item \\t rating \\t unix time, no header), u.item (pipe
  separated, Latin-1, 19 genre flags in the order of u.genre).
- "csv" (ml-latest, ml-25m, ...): ratings.csv (userId,movieId,rating,timestamp) and
  movies.csv (movieId,title,genres with "|" between genres), both with a header.

Rejection reasons, checked in this order: malformed_row, bad_timestamp,
rating_out_of_range, unknown_item.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from cdp.importers.common import (
    DEFAULT_ENCODINGS,
    ImportFormatError,
    Rejected,
    Row,
    count_lines,
    decoded_lines,
    is_blank,
)

Layout = Literal["ml100k", "csv"]
T = TypeVar("T")

LAYOUT_FILES: dict[Layout, tuple[str, str]] = {"ml100k": ("u.data", "u.item"), "csv": ("ratings.csv", "movies.csv")}

# The order of the genre flags in u.item, used when u.genre is not beside it.
ML100K_GENRES: tuple[str, ...] = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

# How each layout says "this movie has no genre"; such movies get an empty genre list.
NO_GENRE_LABELS = frozenset({"unknown", "(no genres listed)"})
UNKNOWN_CATEGORY = "unknown"

MIN_RATING, MAX_RATING = 0.5, 5.0  # ml-100k uses 1..5, the csv releases 0.5..5 in half stars
ML100K_ITEM_FIELDS = 5  # id, title, release date, video release date, IMDb URL; then the genre flags
RATING_COLUMNS = ("userId", "movieId", "rating", "timestamp")
MOVIE_COLUMNS = ("movieId", "title", "genres")

TITLE_YEAR = re.compile(r"\((\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")  # "Toy Story (1995)", "Show (2006-2007)"
TRAILING_YEAR = re.compile(r"(\d{4})\s*$")  # u.item release dates: "01-Jan-1995"


@dataclass(frozen=True, slots=True)
class Item(Row):
    kind: ClassVar[str] = "item"

    id: str
    title: str
    category: str
    description: str
    attributes: dict[str, Any] = field(default_factory=dict)  # {"genres": [str, ...], "year": int | None}


@dataclass(frozen=True, slots=True)
class Rating(Row):
    kind: ClassVar[str] = "rating"

    user_id: str
    item_id: str
    rating: float
    occurred_at: datetime  # aware, UTC


class _RowError(Exception):
    """A line cannot be loaded; carries the rejection reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# -- layout ---------------------------------------------------------------------------


def detect_layout(directory: Path | str) -> Layout:
    """Tell which MovieLens layout a directory holds; raise ImportFormatError if neither."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ImportFormatError(f"{directory} is not a directory.")
    for layout, names in LAYOUT_FILES.items():
        if all((directory / name).is_file() for name in names):
            return layout
    expected = " nor ".join("+".join(names) for names in LAYOUT_FILES.values())
    raise ImportFormatError(f"{directory} has neither {expected}.")


def rating_line_count(directory: Path | str) -> int:
    """The number of rating lines to expect, for a progress bar."""
    layout = detect_layout(directory)
    ratings_name, _ = LAYOUT_FILES[layout]
    header_lines = 1 if layout == "csv" else 0
    return max(count_lines(Path(directory) / ratings_name) - header_lines, 0)


# -- items ----------------------------------------------------------------------------


def read_items(directory: Path | str) -> Iterator[Item | Rejected]:
    """Stream the movies of a MovieLens directory as `Item`s (or `Rejected` lines).

    The layout and headers are checked before the first result, so a wrong directory
    fails at the call, not halfway through an import.
    """
    directory = Path(directory)
    if detect_layout(directory) == "ml100k":
        return _read_ml100k_items(directory / "u.item", _ml100k_genre_names(directory))
    movies = directory / "movies.csv"
    _require_columns(movies, MOVIE_COLUMNS)
    return _read_csv_items(movies)


def _ml100k_genre_names(directory: Path) -> tuple[str, ...]:
    genre_file = directory / "u.genre"
    if not genre_file.is_file():
        return ML100K_GENRES
    # Lines are "name|index"; the index gives the flag position.
    pairs = [line.strip().rsplit("|", 1) for line in decoded_lines(genre_file) if not is_blank(line)]
    try:
        return tuple(name for name, _ in sorted(pairs, key=lambda pair: int(pair[1])))
    except (ValueError, IndexError):
        raise ImportFormatError(f"{genre_file} is not a list of name|index lines.") from None


def _read_ml100k_items(path: Path, genre_names: tuple[str, ...]) -> Iterator[Item | Rejected]:
    # u.item is documented as Latin-1; UTF-8 is tried first in case a user re-saved it.
    records = _split_records(path, "|", ML100K_ITEM_FIELDS + len(genre_names), encodings=("utf-8", "latin-1"))
    return _parse_each(records, lambda fields: _ml100k_item(fields, genre_names), path.name)


def _ml100k_item(fields: list[str], genre_names: tuple[str, ...]) -> Item:
    item_id, title, release_date = _parse_id(fields[0]), fields[1].strip(), fields[2]
    flags = fields[ML100K_ITEM_FIELDS:]
    if any(flag.strip() not in ("0", "1") for flag in flags):
        raise _RowError("malformed_row")
    genres = [name for name, flag in zip(genre_names, flags) if flag.strip() == "1"]
    return _item(item_id, title, genres, _year(title) or _year_of_release_date(release_date))


def _read_csv_items(path: Path) -> Iterator[Item | Rejected]:
    return _parse_each(_csv_records(path, MOVIE_COLUMNS), _csv_item, path.name)


def _csv_item(fields: list[str]) -> Item:
    movie_id, title, genre_list = fields
    title = title.strip()
    genres = [genre.strip() for genre in genre_list.split("|") if genre.strip()]
    return _item(_parse_id(movie_id), title, genres, _year(title))


def _item(item_id: str, title: str, genres: list[str], year: int | None) -> Item:
    genres = [genre for genre in genres if genre not in NO_GENRE_LABELS]
    description = ", ".join(genres) or "No genre listed"
    if year is not None:
        description += f" ({year})"
    return Item(
        id=item_id,
        title=title,
        category=genres[0] if genres else UNKNOWN_CATEGORY,
        description=description,
        attributes={"genres": genres, "year": year},
    )


def _year(title: str) -> int | None:
    match = TITLE_YEAR.search(title)
    return int(match.group(1)) if match else None


def _year_of_release_date(release_date: str) -> int | None:
    match = TRAILING_YEAR.search(release_date)
    return int(match.group(1)) if match else None


# -- ratings --------------------------------------------------------------------------


def read_ratings(directory: Path | str, known_item_ids: Collection[str] | None = None) -> Iterator[Rating | Rejected]:
    """Stream the ratings of a MovieLens directory as `Rating`s (or `Rejected` lines).

    Memory stays flat whatever the file size: lines are read one at a time. Ratings of
    items not in `known_item_ids` are rejected as unknown_item; by default the ids are
    read from the directory's item file (pass the ids already imported to skip that).
    """
    directory = Path(directory)
    layout = detect_layout(directory)
    if layout == "csv":
        _require_columns(directory / "ratings.csv", RATING_COLUMNS)
    if known_item_ids is None:
        known_item_ids = {item.id for item in read_items(directory) if isinstance(item, Item)}
    if layout == "ml100k":
        return _read_ml100k_ratings(directory / "u.data", known_item_ids)
    return _read_csv_ratings(directory / "ratings.csv", known_item_ids)


def _read_ml100k_ratings(path: Path, known_item_ids: Collection[str]) -> Iterator[Rating | Rejected]:
    records = _split_records(path, "\t", len(RATING_COLUMNS))
    return _parse_each(records, lambda fields: _rating(*fields, known_item_ids=known_item_ids), path.name)


def _read_csv_ratings(path: Path, known_item_ids: Collection[str]) -> Iterator[Rating | Rejected]:
    records = _csv_records(path, RATING_COLUMNS)
    return _parse_each(records, lambda fields: _rating(*fields, known_item_ids=known_item_ids), path.name)


def _rating(user: str, item: str, rating: str, timestamp: str, *, known_item_ids: Collection[str]) -> Rating:
    user_id, item_id = _parse_id(user), _parse_id(item)
    value = _parse_float(rating)
    occurred_at = _parse_unix_time(timestamp)
    if not MIN_RATING <= value <= MAX_RATING:
        raise _RowError("rating_out_of_range")
    if item_id not in known_item_ids:
        raise _RowError("unknown_item")
    return Rating(user_id=user_id, item_id=item_id, rating=value, occurred_at=occurred_at)


def _parse_id(text: str) -> str:
    # MovieLens ids are integers; normalising them ("007" -> "7") keeps ratings matching items.
    try:
        return str(int(text))
    except ValueError:
        raise _RowError("malformed_row") from None


def _parse_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _RowError("malformed_row") from None
    if math.isnan(value):
        raise _RowError("malformed_row")
    return value


def _parse_unix_time(text: str) -> datetime:
    try:
        return datetime.fromtimestamp(int(text), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise _RowError("bad_timestamp") from None


# -- line splitting ------------------------------------------------------------------

# A record is (line number, fields in the order the parser wants), or fields None when
# the line has the wrong number of fields.
Record = tuple[int, list[str] | None]


def _parse_each(records: Iterator[Record], parse: Callable[[list[str]], T], file_name: str) -> Iterator[T | Rejected]:
    for line_number, fields in records:
        try:
            if fields is None:
                raise _RowError("malformed_row")
            yield parse(fields)
        except _RowError as error:
            yield Rejected(line_number, file_name, error.reason)


def _split_records(
    path: Path, separator: str, field_count: int, encodings: tuple[str, ...] = DEFAULT_ENCODINGS
) -> Iterator[Record]:
    """Records of a headerless file with no quoting (the ml-100k "u." files)."""
    for line_number, line in enumerate(decoded_lines(path, encodings), start=1):
        if is_blank(line):
            continue
        fields = line.rstrip("\r\n").split(separator)
        yield line_number, fields if len(fields) == field_count else None


def _csv_records(path: Path, columns: tuple[str, ...]) -> Iterator[Record]:
    """Records of a CSV file with a header, fields picked by column name."""
    reader = csv.reader(decoded_lines(path))
    header = [name.strip() for name in next(reader, [])]
    positions = [header.index(column) for column in columns]
    for fields in reader:
        if not any(value.strip() for value in fields):
            continue
        if len(fields) != len(header):
            yield reader.line_num, None
            continue
        yield reader.line_num, [fields[position] for position in positions]


def _require_columns(path: Path, columns: tuple[str, ...]) -> None:
    header = _header(path)
    missing = [column for column in columns if column not in header]
    if missing:
        raise ImportFormatError(f"{path} lacks the column(s) {', '.join(missing)} in its header.")


def _header(path: Path) -> list[str]:
    first_line = next(decoded_lines(path), "")
    return [name.strip() for name in next(csv.reader([first_line]), [])]
