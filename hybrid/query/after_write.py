"""What a writer makes ready for the version it has just committed, so that the first search of that
version does not have to: the rows the indexes miss, logged for search beside them
(:func:`hybrid.index.tail.log_unindexed`), and the readers of the result rows
(:func:`hybrid.query.single.prepare_readers`). Both only for what this table object has searched."""

from __future__ import annotations

from hybrid.index.tail import log_unindexed
from hybrid.index.view import IndexedSnapshot
from hybrid.query.single import prepare_readers


def prepare_version(view: IndexedSnapshot) -> None:
    """Make ready what the first search of `view` (a version just committed) would otherwise make."""
    log_unindexed(view)
    prepare_readers(view)
