"""Pieces shared by the data-set parsers: results, the import summary and file helpers.

Each parser is a generator of results. A result is either a loaded record (a `Row`
subclass such as `Rating` or `Purchase`) or a `Rejected` line with a stable snake_case
reason code, so that a command can count, report and test rejections without parsing
messages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, TypeVar

# Encodings tried in order for each line. Exports of these data sets are UTF-8 or a
# Windows/Latin-1 code page; latin-1 decodes any byte, so it is the last resort.
DEFAULT_ENCODINGS: tuple[str, ...] = ("utf-8", "cp1252", "latin-1")


class ImportFormatError(ValueError):
    """The input cannot be imported at all: missing files or columns, or a bad option.

    The message is one plain sentence a command can print as is.
    """


class Row:
    """Base of the loaded record types; `kind` names the type in an `ImportSummary`."""

    __slots__ = ()
    kind: ClassVar[str] = "row"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A data line that was not loaded; `line` is 1-based and counts the header."""

    line: int
    file: str
    reason: str


R = TypeVar("R", bound=Row | Rejected)


@dataclass
class ImportSummary:
    """Counts of loaded records per kind and of rejected lines per reason."""

    loaded: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, result: Row | Rejected) -> None:
        if isinstance(result, Rejected):
            self.rejected[result.reason] += 1
        else:
            self.loaded[result.kind] += 1

    def track(self, results: Iterable[R]) -> Iterator[R]:
        """Pass results through unchanged while counting them."""
        for result in results:
            self.add(result)
            yield result

    @property
    def loaded_total(self) -> int:
        return sum(self.loaded.values())

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected.values())

    @property
    def total(self) -> int:
        return self.loaded_total + self.rejected_total


def input_files(path: Path | str, suffixes: tuple[str, ...]) -> list[Path]:
    """The files to read: the file itself, or a directory's files with one of the suffixes,
    sorted by name."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise ImportFormatError(f"{path} is neither a file nor a directory.")
    files = sorted(child for child in path.iterdir() if child.is_file() and child.suffix.lower() in suffixes)
    if not files:
        raise ImportFormatError(f"{path} contains no {', '.join(suffixes)} files.")
    return files


def is_blank(line: str) -> bool:
    return not line.strip()


def count_lines(path: Path | str) -> int:
    """Count the non-blank physical lines of a file, for progress totals.

    Parsers skip blank lines, so for files without line breaks inside quoted fields
    this is the number of results plus one per header line.
    """
    with open(path, "rb") as file:
        return sum(1 for line in file if line.strip())


def decoded_lines(path: Path, encodings: tuple[str, ...] = DEFAULT_ENCODINGS) -> Iterator[str]:
    """Yield the lines of a text file, decoding each with the first encoding that fits.

    Decoding per line rather than per file lets one stray Latin-1 byte in a UTF-8 file
    (or the reverse) cost a character, not the import. Line endings are kept, as the
    csv module expects.
    """
    with open(path, "rb") as file:
        for number, raw in enumerate(file):
            if number == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte order mark written by spreadsheet exports
            yield _decode(raw, encodings)


def _decode(raw: bytes, encodings: tuple[str, ...]) -> str:
    for encoding in encodings:
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return raw.decode(encodings[-1], errors="replace")
