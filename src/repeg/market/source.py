"""The identity of a quote file: what `RunStarted.market` records of a replayed file, and checking it later.

A run that replayed a quote file records its resolved path, size and SHA-256, so that months later the run can be
audited or reproduced from the journal, and `repeg report RUN_ID` can draw the very quotes the run saw (only if
the file at that path still has the same content).
"""

from __future__ import annotations

import hashlib
import stat
from dataclasses import dataclass
from pathlib import Path

from repeg.domain.events import QuoteFileSource

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, lowercase hex (read in chunks: quote files run to gigabytes)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def quote_file_source(path: Path) -> QuoteFileSource:
    """What a run records of the quote file at `path` (an `OSError` if it cannot be read)."""
    resolved = path.resolve()
    return QuoteFileSource(
        path=str(resolved), size_bytes=resolved.stat().st_size, sha256=file_sha256(resolved)
    )


@dataclass(frozen=True)
class FileCheck:
    """The recorded quote file as it is now: `usable` when it is there with the recorded content."""

    usable: bool
    #: Why it is not usable (None when it is): one sentence naming the file.
    problem: str | None = None


def check_recorded(source: QuoteFileSource) -> FileCheck:
    """Is the file the run replayed still at its recorded path, with the recorded SHA-256?

    Only a regular file of the recorded size is hashed: a pipe or a device at that path (a tampered or reused
    journal) would block or never end, and a file of another size has changed without reading gigabytes.
    """
    path = Path(source.path)
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):
            return FileCheck(
                False, f"The quote file the run replayed, {source.path}, is no longer a regular file."
            )
        if found.st_size != source.size_bytes:
            return FileCheck(
                False,
                f"The quote file the run replayed, {source.path}, has changed since the run "
                f"({found.st_size:,} bytes, recorded {source.size_bytes:,}).",
            )
        digest = file_sha256(path)
    except FileNotFoundError:
        return FileCheck(False, f"The quote file the run replayed, {source.path}, is no longer there.")
    except OSError as exc:
        return FileCheck(False, f"The quote file the run replayed, {source.path}, cannot be read ({exc}).")
    if digest != source.sha256:
        return FileCheck(
            False,
            f"The quote file the run replayed, {source.path}, has changed since the run "
            f"(SHA-256 {digest}, recorded {source.sha256}).",
        )
    return FileCheck(True)
