"""The durable run journal: append-only events, fold-driven `show`, crash-safe `resume` (see `base`)."""

from repeg.journal.base import Journal, RunSummary
from repeg.journal.factory import DEFAULT_JOURNAL, open_journal

__all__ = ["DEFAULT_JOURNAL", "Journal", "RunSummary", "open_journal"]
