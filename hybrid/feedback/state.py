"""The tuned state a table uses by default (placeholder until tuning lands)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hybrid.query.search import Query
    from hybrid.table import Table


def apply_defaults(table: Table, query: Query) -> Query:
    return query
