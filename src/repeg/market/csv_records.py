"""What the `csv` module reads of a CSV quote or trade file (`.csv`, or `.csv.gz` in any case), apart from pyarrow:
its header's column names, and the first record whose field count is not the header's (to name its row).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

from repeg.errors import QuoteFileError

#: The first bytes of every gzip stream.
_GZIP_MAGIC = b"\x1f\x8b"


def misshapen_record(path: Path, fields: int) -> QuoteFileError | None:
    """The first record whose field count is not the header's, naming its row; None if the file has none.

    Read again with the `csv` module, only on this error path: pyarrow's own report names no row (it numbers rows
    only on one thread, and cannot hand a row that is not UTF-8 to a handler). Rows count records from 1, blank
    lines skipped, as pyarrow reads them; a value that is not UTF-8 is shown replaced, as in pyarrow's message.
    A file damaged elsewhere gives None: the caller raises the first read's error.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as handle:
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
