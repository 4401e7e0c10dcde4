"""The Table methods of feedback and tuning, kept out of ``hybrid/table.py`` (which delegates here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

if TYPE_CHECKING:
    from hybrid.commits import Commit
    from hybrid.feedback.judgments import Judgments
    from hybrid.feedback.store import FeedbackLog, Kind
    from hybrid.feedback.tune import TuneReport
    from hybrid.query.search import Query
    from hybrid.table import Table


class FeedbackMixin:
    """Feedback (``add_feedback``, ``feedback``) and what is learned from it (``tune``, ``tuned``)."""

    @property
    def feedback(self) -> FeedbackLog:
        """The feedback given on this table: an ordinary table of the same database, ``<name>__feedback``."""
        from hybrid.feedback.store import FeedbackLog

        return FeedbackLog(cast("Table", self))

    def add_feedback(
        self,
        query: str,
        row: int | Mapping[str, Any],
        label: float = 1.0,
        *,
        kind: Kind = "judgment",
        who: str | None = None,
        source: str | None = None,
        shown_rank: int | None = None,
        query_vector: Sequence[float] | np.ndarray | None = None,
    ) -> Commit:
        """Record that row `row` (a ``_rowid``, or ``{key_column: value}``) answers `query` with relevance
        `label` (0 wrong .. 4 perfect; a click is 1). Kept in ``<name>__feedback``; raises
        :class:`hybrid.errors.FeedbackError` (writing nothing) for an unknown row, a label out of range or an
        empty query. Returns the feedback table's commit.

        >>> import hybrid, tempfile
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("d", [{"id": 1, "text": "x"}])
        >>> t.add_feedback("x?", {"id": 1}, 1).version
        2
        """
        return self.feedback.add(
            query, row, label, kind=kind, who=who, source=source, shown_rank=shown_rank, query_vector=query_vector
        )

    def _tuned_defaults(self, query: Query) -> Query:
        """`query` with the table's enabled tuned fusion and reranker (see :mod:`hybrid.feedback.state`)."""
        from hybrid.feedback.state import apply_defaults

        return apply_defaults(cast("Table", self), query)

    def tune(self, judgments: Judgments | None = None, **settings: Any) -> TuneReport:
        """Learn this table's fusion and a cross-encoder reranker from its feedback (or `judgments`), and make
        each the default only if it beats the current one on held-out queries (see :mod:`hybrid.feedback.tune`;
        `settings` are :class:`~hybrid.feedback.tune.TuneSettings` fields: epochs, top_n, test_fraction, seed,
        fusion=False, reranker=False, enable=False...; ``embedder=True`` also fine-tunes the table's embedder
        into a new vector column, :mod:`hybrid.feedback.embedder`). Training needs the ``tune`` extra (torch)."""
        from hybrid.feedback.tune import TuneSettings, tune

        return tune(cast("Table", self), judgments, TuneSettings(**settings))

    def tune_runs(self) -> list[dict[str, Any]]:
        """Every tune run's report, oldest first; ``enabled`` marks the one the table uses."""
        from hybrid.feedback.state import runs

        return runs(cast("Table", self))

    def use_tuned(self, run: str | None) -> Commit:
        """Search with what tune run `run` learned (even if the guard refused it), or None: the library's
        defaults again. A versioned commit of the table's metadata."""
        from hybrid.feedback.state import use_run

        return use_run(cast("Table", self), run)
