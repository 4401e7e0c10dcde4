"""`FeedbackLog`: what users told a table about its results, kept as the table ``<table>__feedback``.

The feedback table is an ordinary versioned table of the same database: it time-travels, survives
crashes like any other, and ``db.sql("select * from docs__feedback")`` reads it. One row per judgment:

============== ================== ==========================================================
column         type               what
============== ================== ==========================================================
query          string             the query the user asked (never empty)
row            uint64             the judged row's ``_rowid`` in the table
key            string (nullable)  the judged row's key, when it was named by key (as text)
key_column     string (nullable)  the key's column
label          float64            graded relevance, 0 (wrong) .. :data:`MAX_LABEL` (4); a click is 1
kind           string             ``"judgment"`` or ``"click"``
who            string (nullable)  who gave it (a user or API key name)
source         string (nullable)  where it came from (``"ui"``, ``"qrels:train.tsv"``, ...)
at             timestamp (UTC)    when it was recorded
shown_rank     int32 (nullable)   1-based rank the row was shown at, if it was shown
table_version  int64              the table's version when the feedback was recorded
query_vector   list<float32>      the query vector used, if any (nullable)
============== ================== ==========================================================

A batch is validated whole before anything is written: an unknown row or key, a label out of range
or an empty query raises :class:`hybrid.errors.FeedbackError` and the feedback table is unchanged.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hybrid.errors import FeedbackError

if TYPE_CHECKING:
    from hybrid.commits import Commit
    from hybrid.table import Table

SUFFIX = "__feedback"
MAX_LABEL = 4.0
"""Labels are graded like TREC/BEIR qrels: 0 not relevant, 1 relevant, 2 highly relevant, up to 4."""
Kind = Literal["judgment", "click"]
KINDS = ("judgment", "click")

SCHEMA = pa.schema(
    [
        pa.field("query", pa.string(), nullable=False),
        pa.field("row", pa.uint64(), nullable=False),
        pa.field("key", pa.string()),
        pa.field("key_column", pa.string()),
        pa.field("label", pa.float64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("who", pa.string()),
        pa.field("source", pa.string()),
        pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("shown_rank", pa.int32()),
        pa.field("table_version", pa.int64(), nullable=False),
        pa.field("query_vector", pa.list_(pa.float32())),
    ]
)


def feedback_table_name(name: str) -> str:
    """The name of the table holding the feedback on table `name`."""
    return f"{name}{SUFFIX}"


@dataclass(frozen=True)
class Feedback:
    """One judgment: `row` is a ``_rowid`` (int) or ``{key_column: value}`` naming the row by key."""

    query: str
    row: int | Mapping[str, Any]
    label: float = 1.0
    kind: Kind = "judgment"
    who: str | None = None
    source: str | None = None
    shown_rank: int | None = None
    query_vector: Sequence[float] | np.ndarray | None = None


def _check_label(label: Any, where: str) -> float:
    if isinstance(label, bool) or not isinstance(label, (int, float, np.integer, np.floating)):
        raise FeedbackError(f"{where}: label must be a number from 0 to {MAX_LABEL:g}, got {label!r}")
    value = float(label)
    if not math.isfinite(value) or not 0.0 <= value <= MAX_LABEL:
        raise FeedbackError(f"{where}: label {label!r} is out of range: use 0 (wrong) to {MAX_LABEL:g} (perfect)")
    return value


def _check_optional_text(value: Any, what: str, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise FeedbackError(f"{where}: {what} must be a string or None, got {type(value).__name__}")
    return value


class FeedbackLog:
    """The feedback given on one table (see the module docstring for the columns).

    Example:
        >>> import hybrid, tempfile
        >>> db = hybrid.connect(tempfile.mkdtemp())
        >>> t = db.create_table("docs", [{"id": "a", "text": "cats"}, {"id": "b", "text": "dogs"}])
        >>> _ = t.add_feedback("pets that purr", {"id": "a"}, 2)
        >>> db.sql("select query, key, label from docs__feedback").to_pylist()
        [{'query': 'pets that purr', 'key': 'a', 'label': 2.0}]
    """

    def __init__(self, table: Table) -> None:
        self._table = table
        self.name = feedback_table_name(table.name)
        self.path: Path = table.path.parent / self.name

    def __repr__(self) -> str:
        return f"FeedbackLog({self._table.name!r}, rows={self.count()})"

    def exists(self) -> bool:
        from hybrid.storage.versions import VersionLog

        return VersionLog(self.path).exists()

    def table(self) -> Table:
        """The feedback table itself (created, empty, on first use)."""
        from hybrid.db import Database
        from hybrid.storage import crypto

        key = crypto.cipher_for(self.path)  # an encrypted database's feedback is encrypted with the same key
        db = Database(self.path.parent, upkeep=None, encryption_key=key)
        return db.create_table(self.name, schema=SCHEMA, mode="exist_ok")

    def count(self) -> int:
        return self.table().count_rows() if self.exists() else 0

    def to_arrow(self, where: str | None = None) -> pa.Table:
        """The feedback rows (optionally filtered by a SQL `where`), oldest first."""
        if not self.exists():
            return SCHEMA.empty_table()
        return self.table().to_arrow(where=where)

    def add(
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
        """Record one judgment (see :meth:`add_many`)."""
        return self.add_many([Feedback(query, row, label, kind, who, source, shown_rank, query_vector)])

    def add_many(self, items: Iterable[Feedback | Mapping[str, Any]]) -> Commit:
        """Record many judgments in one commit of the feedback table; all are checked first, so a bad one
        writes nothing. Items are :class:`Feedback` or dicts with the same fields."""
        records = [_as_feedback(x, i) for i, x in enumerate(items)]
        if not records:
            raise FeedbackError("no feedback given")
        rows = self._resolve(records)
        return self.table().add(rows)

    def _resolve(self, records: list[Feedback]) -> pa.Table:
        table = self._table
        snap = table.snapshot()
        keys: dict[str, dict[str, int]] = {}
        now = dt.datetime.now(dt.timezone.utc)
        out: dict[str, list[Any]] = {f.name: [] for f in SCHEMA}
        for i, r in enumerate(records):
            where = f"feedback {i}"
            if not isinstance(r.query, str) or not r.query.strip():
                raise FeedbackError(f"{where}: the query is empty; say what the user searched for")
            label = _check_label(r.label, where)
            if r.kind not in KINDS:
                raise FeedbackError(f"{where}: kind must be one of {KINDS}, got {r.kind!r}")
            who = _check_optional_text(r.who, "who", where)
            source = _check_optional_text(r.source, "source", where)
            if r.shown_rank is not None and (
                isinstance(r.shown_rank, bool) or not isinstance(r.shown_rank, int) or not 1 <= r.shown_rank < 2**31
            ):
                raise FeedbackError(f"{where}: shown_rank must be a 1-based rank, got {r.shown_rank!r}")
            key: str | None = None
            key_column: str | None = None
            if isinstance(r.row, Mapping):
                if len(r.row) != 1:
                    raise FeedbackError(
                        f"{where}: name the row by one key column, e.g. {{'id': 'doc7'}}, got {r.row!r}"
                    )
                ((key_column, value),) = r.row.items()
                if key_column not in table.schema.names:
                    raise FeedbackError(f"{where}: no column {key_column!r} in table {table.name!r}")
                if key_column not in keys:
                    keys[key_column] = _key_rowids(table, key_column, _named_keys(records, key_column))
                key = str(value)
                found = keys[key_column].get(key)
                if found is None:
                    raise FeedbackError(f"{where}: no row of {table.name!r} has {key_column} = {value!r}")
                rowid = found
            elif isinstance(r.row, (int, np.integer)) and not isinstance(r.row, bool):
                rowid = int(r.row)
                if rowid < 0 or not snap.locate(np.array([rowid], dtype=np.uint64))[2][0]:
                    raise FeedbackError(f"{where}: row {rowid} is not a live row of {table.name!r}")
            else:
                raise FeedbackError(f"{where}: row must be a _rowid or {{key_column: value}}, got {r.row!r}")
            vector = _check_vector(r.query_vector, where)
            values = (r.query, rowid, key, key_column, label, r.kind, who, source, now, r.shown_rank)
            for name, v in zip(SCHEMA.names, values, strict=False):
                out[name].append(v)
            out["table_version"].append(snap.manifest.version)
            out["query_vector"].append(vector)
        return pa.table(out, schema=SCHEMA)


def _as_feedback(item: Feedback | Mapping[str, Any], i: int) -> Feedback:
    if isinstance(item, Feedback):
        return item
    if not isinstance(item, Mapping):
        raise FeedbackError(f"feedback {i}: expected a Feedback or a dict, got {type(item).__name__}")
    try:
        return Feedback(**item)
    except TypeError as exc:
        raise FeedbackError(f"feedback {i}: {exc}") from None


def _check_vector(v: Any, where: str) -> list[float] | None:
    if v is None:
        return None
    try:
        arr = np.asarray(v, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise FeedbackError(f"{where}: query_vector must be a list of numbers") from None
    if arr.size == 0 or not np.all(np.isfinite(arr)):
        raise FeedbackError(f"{where}: query_vector must be a non-empty list of finite numbers")
    return [float(x) for x in arr]


def _named_keys(records: list[Feedback], column: str) -> set[str]:
    """The keys (as text) the batch names in `column`."""
    return {str(v) for r in records if isinstance(r.row, Mapping) for c, v in r.row.items() if c == column}


def _key_rowids(table: Table, column: str, keys: set[str]) -> dict[str, int]:
    """``{str(key): _rowid}`` for the named `keys` among the live rows (the newest row wins for a repeated
    key). String and integer columns are matched in Arrow (their text is what ``str`` gives); other types
    (floats, dates) in Python, where ``str`` is the definition."""
    data = table.to_arrow([column], with_rowid=True)
    values, rowids = data.column(column), data.column("_rowid")
    kind = values.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_integer(kind):
        text = pc.cast(values, pa.string())
        hit = pc.is_in(text, value_set=pa.array(sorted(keys), pa.string()))
        names, ids = pc.filter(text, hit).to_pylist(), pc.filter(rowids, hit).to_pylist()
    else:
        names = [None if v is None else str(v) for v in values.to_pylist()]
        ids = rowids.to_pylist()
    return {k: int(r) for k, r in zip(names, ids, strict=True) if k is not None and k in keys}
