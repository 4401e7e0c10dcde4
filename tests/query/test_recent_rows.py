"""Filter columns of recently written rows, read once per table object (:mod:`hybrid.query.recent_rows`).

Filters carried from the versions they last ran on to the newest check the rows added in between;
their values are read once and shared. A carried filter must answer exactly as one evaluated from
scratch, across appends, deletes and updates, whatever version each filter last ran on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import hybrid
from hybrid.query import recent_rows
from hybrid.query.allowed import allowed_rows, cached_allowed
from hybrid.query.filter import compile_filter
from hybrid.query.recent_rows import RecentColumn

FILTERS = ["year >= 2005", "category = 'b'", "year BETWEEN 2001 AND 2009 AND category IN ('a', 'c')", "year < 2003"]


def _rows(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": pa.array(np.arange(start, start + n), pa.int64()),
            "year": pa.array(rng.integers(1995, 2015, n), pa.int64()),
            "category": pa.array(rng.choice(["a", "b", "c", None], n).tolist(), pa.string()),
        }
    )


def test_filters_carried_from_different_versions_answer_as_from_scratch(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", _rows(0, 500, 1))
    rng = np.random.default_rng(5)
    for step in range(24):
        if step % 5 == 4:
            t.delete(f"id % 7 = {step % 7} AND id >= 500")
        elif step % 7 == 6:
            t.update(where=f"id = {500 + step}", values={"year": 1990})  # a row rewritten: a new row id
        else:
            t.add(_rows(1_000 + 10 * step, int(rng.integers(1, 4)), step))
        view = t.indexed_snapshot()
        for sql in FILTERS[: 1 + step % len(FILTERS)]:  # each filter last ran on another version
            flt = compile_filter(sql, view.schema)
            got = cached_allowed(view, flt)
            assert got.ids.tolist() == allowed_rows(view, flt).ids.tolist(), (step, sql)
    store = view.cache.stores["recent_rows"]
    assert {key[1] for key in store} == {"year", "category"}


def test_a_column_is_read_once_per_row(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", _rows(0, 100, 1))
    for i in range(3):
        t.add(_rows(100 + 10 * i, 10, i))
    snap = t.snapshot()
    ids = np.sort(t.to_arrow(["id"], with_rowid=True).column("_rowid").to_numpy())[-30:]
    read: list[int] = []
    take = type(snap).take

    def counting(self, rowids, columns=None):  # type: ignore[no-untyped-def]
        read.append(len(rowids))
        return take(self, rowids, columns)

    monkeypatch.setattr(type(snap), "take", counting)
    column = RecentColumn("year")
    want = snap.to_arrow(["year"], with_rowid=True)
    by_id = dict(zip(want.column("_rowid").to_pylist(), want.column("year").to_pylist()))
    for part in (ids[10:20], ids[5:25], ids[::-1], ids[:3]):
        assert column.values_of(snap, part).to_pylist() == [by_id[i] for i in part.tolist()]
    assert sum(read) == 30  # each row read once, whatever order and overlap it was asked in
    monkeypatch.setattr(recent_rows, "RECENT_ROWS", 8)
    column.values_of(snap, ids[:1])  # known: nothing read, nothing trimmed
    assert len(column.ids) == 30
    fresh = RecentColumn("year")
    assert fresh.values_of(snap, ids[:20]).to_pylist() == [by_id[i] for i in ids[:20].tolist()]  # all answered
    assert fresh.ids.tolist() == ids[12:20].tolist()  # only the newest (highest) row ids are kept


def test_filters_carried_to_one_version_share_one_index_build(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Filters last run on different versions carry to the newest: their added rows nest, so the scalar
    indexes over those rows are built once for the largest set, and each filter still keeps only its rows."""
    from hybrid.query import allowed

    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", _rows(0, 300, 1))
    filters = ["year >= 2005", "year < 2003", "year BETWEEN 2001 AND 2009", "year != 2004"]
    for step, sql in enumerate(filters):  # each filter last runs on its own version, 3 rows apart
        t.add(_rows(1_000 + 10 * step, 3, step))
        view = t.indexed_snapshot()
        cached_allowed(view, compile_filter(sql, view.schema))
    t.add(_rows(2_000, 4, 9))
    t.delete("id = 1000")  # a row of the first filter's version gone: dropped by every carry
    view = t.indexed_snapshot()
    built: list[int] = []
    indexed = allowed._indexed

    def counting(view, flt, ids):  # type: ignore[no-untyped-def]
        built.append(len(ids))
        return indexed(view, flt, ids)

    monkeypatch.setattr(allowed, "_indexed", counting)
    for sql in filters:  # the oldest start first: its added rows hold every later one's
        flt = compile_filter(sql, view.schema)
        assert cached_allowed(view, flt).ids.tolist() == allowed_rows(view, flt).ids.tolist(), sql
    assert built == [13]  # the rows added since the oldest start (3 x 3 + 4), built once for the four filters
