"""What the `csv` module reads of a CSV quote or trade file (`.csv`, or `.csv.gz` in any case), apart from pyarrow:
its header's column names, the first record whose field count is not the header's, and the line where a record
starts (a refusal's row is that line, as in a plan: the header is row 1).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from repeg.errors import QuoteFileError

#: The first bytes of every gzip stream.
_GZIP_MAGIC = b"\x1f\x8b"


def misshapen_record(path: Path, fields: int) -> QuoteFileError | None:
    """The first record whose field count is not the header's, naming its row; None if the file has none.

    Read again with the `csv` module, only on this error path: pyarrow's own report names no row (it numbers rows
    only on one thread, and cannot hand a row that is not UTF-8 to a handler). Rows count records from 1, blank
    lines skipped, as pyarrow reads them (`rows_as_lines` names its line); a value that is not UTF-8 is shown
    replaced, as in pyarrow's message. A file damaged elsewhere gives None: the caller raises the first read's error.
    """
    try:
        with _text(path) as handle:
            rows = csv.reader(handle)
            next(rows, None)  # the header
            for record, row in enumerate((row for row in rows if row), start=1):  # a blank line is no record
                if len(row) != fields:
                    shown = ",".join(row)[:120]
                    return QuoteFileError(
                        str(path), record, f"expected {fields} fields, got {len(row)}: {shown!r}"
                    )
    except (OSError, EOFError, zlib.error, csv.Error):
        return None
    return None


def csv_header(path: Path) -> list[str]:
    """The header's column names, read as CSV (a name may be quoted, as pyarrow reads it)."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        first = handle.readline()  # only this line is decoded here: pyarrow judges the rest
    if opener is open and first.startswith(_GZIP_MAGIC):  # else: "'utf-8' codec can't decode byte 0x8b"
        raise QuoteFileError(str(path), None, "gzip-compressed: name it .csv.gz")
    header = first.splitlines()[:1]  # the header ends at a lone CR too (pyarrow reads such files)
    return next(csv.reader([line.decode("utf-8-sig") for line in header]), [])


def _text(path: Path) -> TextIO:
    """The file as text (gunzipped for `.gz`), lines split at LF, CRLF or a lone CR as pyarrow splits them; a value
    that is not UTF-8 replaced."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    return opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="")


def record_line(path: Path, record: int) -> int:
    """The line where data record `record` (from 1, blank lines skipped, as pyarrow and the numpy reader count
    them) starts, the header being line 1. A record the file no longer holds (changed since, or cut where pyarrow
    and the `csv` module split it differently) is placed as if no line were blank."""
    try:
        with _text(path) as handle:
            rows = csv.reader(handle)
            next(rows, None)  # the header
            seen, start = 0, rows.line_num + 1
            for row in rows:
                seen += 1 if row else 0
                if row and seen == record:
                    return start
                start = rows.line_num + 1
    except (OSError, EOFError, zlib.error, csv.Error):
        pass
    return record + 1


@contextmanager
def rows_as_lines(path: Path) -> Iterator[None]:
    """Refusals raised within, renumbered for a CSV file: a record (from 1, as the readers count them) becomes the
    line an editor shows, the header being row 1 as in a plan. A Parquet file's rows stay its records."""
    try:
        yield
    except QuoteFileError as exc:
        if exc.row is None or not path.name.lower().endswith((".csv", ".csv.gz")):
            raise
        raise exc.renumbered(lambda record: record_line(path, record)) from exc.__cause__
