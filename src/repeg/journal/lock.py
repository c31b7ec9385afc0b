"""One process works a run at a time: an exclusive lock per run beside a SQLite journal.

Two processes working one run on a broker that outlives them (the run still going while `repeg resume` starts,
say) would each take the other's order in flight for one that never reached the broker and send the leg again.
`RunLock.acquire` takes an exclusive `flock` on `<journal>.<run id>.lock`, held until `release` or until the
process dies (the kernel drops it, so a killed run never leaves its run locked). The file is removed on release;
a process that opened it just before checks, once locked, that it still holds the file at that path.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

if sys.platform != "win32":
    import fcntl


def lock_path(journal: Path, run_id: str) -> Path:
    """The lock file of `run_id` in `journal` (run ids are letters, digits, '-' and '_': safe in a file name),
    beside the file the path resolves to: a journal named through a symbolic link has the same locks."""
    real = journal.resolve()
    return real.with_name(f"{real.name}.{run_id}.lock")


def refuse_hard_links(journal: Path) -> None:
    """Refuse (`ConfigError` naming `--journal`) to work a run in a journal file that has other names (hard links):
    its run locks sit beside each name, so two processes could work one run through two names at once, and SQLite
    keeps its write-ahead log beside each name too, so their commits could be lost or the file damaged."""
    from repeg.errors import ConfigError

    links = journal.stat().st_nlink
    if links > 1:
        real = journal.resolve()  # as `find` takes it from any directory, a symbolic link's target
        # quoted for a shell: the command is copied into one, and a path may hold a space or a quote
        find = shlex.join(["find", str(_mount_point(real)), "-xdev", "-samefile", str(real)])
        raise ConfigError(
            "--journal",
            str(journal),
            f"the journal file has {links} names (hard links): one run could be worked through two of them at "
            "once, and SQLite keeps a write-ahead log beside each name; remove its other names, keeping the one "
            f"its runs were worked under (`{find}` lists them)",
        )


def _mount_point(path: Path) -> Path:
    """The top of the file system the resolved `path` is on: every other name of a file (a hard link) is below it."""
    top = path
    while top.parent != top and top.parent.stat().st_dev == top.stat().st_dev:
        top = top.parent
    return top


def _holds(path: Path, fd: int) -> bool:
    """True when `fd` is the file now at `path` (not one a releasing holder removed after we opened it)."""
    try:
        at_path = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (at_path.st_dev, at_path.st_ino) == (held.st_dev, held.st_ino)


class RunLock:
    """An exclusive lock on one run of one journal."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self._path = path
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path) -> RunLock | None:
        """The lock of `path`, or None when another holder (process or open journal) has it. Raises `OSError`
        when the lock file cannot be created. Without `flock` (Windows) nothing is locked."""
        if sys.platform == "win32":
            return cls(path, None)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None
            if _holds(path, fd):
                return cls(path, fd)
            os.close(fd)  # the file was released and removed meanwhile: lock the one there now

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self._path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)
