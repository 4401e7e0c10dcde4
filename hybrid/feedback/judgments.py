"""Feedback turned into graded judgments per query, and the seeded split of queries that tuning holds out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hybrid.errors import FeedbackError

if TYPE_CHECKING:
    from hybrid.table import Table


@dataclass(frozen=True)
class Judgments:
    """``labels[query] = {rowid: label}`` (the newest label wins for a repeated (query, row))."""

    labels: Mapping[str, Mapping[int, float]]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def queries(self) -> list[str]:
        return sorted(self.labels)

    def positives(self, query: str) -> list[int]:
        return [r for r, v in self.labels[query].items() if v > 0]

    def answerable(self) -> Judgments:
        """Only the queries with at least one relevant row (the others cannot be ranked well or badly)."""
        return Judgments({q: rows for q, rows in self.labels.items() if any(v > 0 for v in rows.values())})

    def subset(self, queries: list[str]) -> Judgments:
        return Judgments({q: self.labels[q] for q in queries})

    def qrels(self) -> dict[str, dict[str, int]]:
        """As trec_eval qrels: ``{query: {str(rowid): grade}}`` (grades rounded to integers)."""
        return {q: {str(r): int(round(v)) for r, v in rows.items()} for q, rows in self.labels.items()}

    def split(self, test_fraction: float, seed: int) -> tuple[Judgments, Judgments]:
        """(train, held-out), split by query: a query's judgments all go to one side. Seeded."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction!r}")
        order = np.random.default_rng(seed).permutation(len(self.queries))
        queries = self.queries
        n_test = max(1, int(round(len(queries) * test_fraction)))
        test = sorted(queries[i] for i in order[:n_test])
        train = sorted(queries[i] for i in order[n_test:])
        return self.subset(train), self.subset(test)

    def shuffled(self, seed: int) -> Judgments:
        """The same labels given to random rows of the same pool (a control that should teach nothing)."""
        rng = np.random.default_rng(seed)
        rows = [r for q in self.queries for r in self.labels[q]]
        out: dict[str, dict[int, float]] = {}
        for q in self.queries:
            picked = rng.choice(len(rows), size=len(self.labels[q]), replace=False)
            out[q] = {rows[i]: v for i, v in zip(picked, self.labels[q].values(), strict=True)}
        return Judgments(out)


def from_feedback(table: Table) -> Judgments:
    """The table's feedback (``<name>__feedback``) as judgments, over rows that are still live."""
    data = table.feedback.to_arrow()
    if data.num_rows == 0:
        raise FeedbackError(
            f"table {table.name!r} has no feedback to learn from: add_feedback(), or hybrid feedback import qrels.tsv"
        )
    live = set(table.to_arrow([], with_rowid=True).column("_rowid").to_pylist())
    labels: dict[str, dict[int, float]] = {}
    order = np.argsort(data.column("at").to_numpy(), kind="stable")
    queries, rows, values = (data.column(c).to_pylist() for c in ("query", "row", "label"))
    for i in order:
        if rows[i] in live:
            labels.setdefault(queries[i], {})[int(rows[i])] = float(values[i])
    return Judgments(labels)
