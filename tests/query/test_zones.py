"""Fragments ruled out of a filter by their integer columns' value ranges (hybrid.query.zones).

Ruling a fragment out must never change an answer: every filter gives the rows DuckDB finds over
the whole table (ranges, NULLs, negative and decimal literals, IN with NULL, NOT, OR, a column
added later, deleted rows). And a key lookup among many fragments (a delete by id in a table
written to while it serves) evaluates the filter over the fragment that may hold the key only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.query import filter as filter_mod
from hybrid.query.allowed import allowed_rows
from hybrid.query.filter import compile_filter
from hybrid.query.predicate import And, Constant, Not, Or, Term
from hybrid.query.zones import may_match


def _table(tmp_path: Path) -> hybrid.Table:
    db = hybrid.connect(tmp_path / "db")
    rows = [{"id": i, "grp": i % 7 if i % 11 else None, "name": f"n{i}"} for i in range(2_000)]
    table = db.create_table("t", rows)
    for k in range(12):  # small appends, as a served table gets them: one fragment each
        base = 1_000_000 + 100 * k
        table.add([{"id": base + j, "grp": None if j == 1 else -j, "name": f"a{k}-{j}"} for j in range(3)])
    table.delete("id = 1000201 OR id = 17")
    return table


def _by_duckdb(table: hybrid.Table, where: str) -> np.ndarray:
    """The live row ids DuckDB finds for `where` over every row (the reference)."""
    snap = table.snapshot()
    everything = snap.to_arrow(["id", "grp", "name"], with_rowid=True)
    keep = compile_filter(where, snap.schema).mask(everything.select(["id", "grp", "name"]))
    return np.sort(everything.column("_rowid").to_numpy()[keep])


FILTERS = [
    "id = 1000402",
    "id = 1000201",  # deleted
    "id = 17",  # deleted, in the big fragment
    "id = 5",
    "id = -1",
    "id = 999999",
    "id >= 1000500",
    "id > 1001102",
    "id < 3",
    "id <= 0",
    "id BETWEEN 1999 AND 1000001",
    "id BETWEEN 1000300 AND 1000302",
    "id IN (4, 1000700, 1000801)",
    "id IN (1000700, NULL)",
    "id = 1000402.0",
    "id = 1000402.5",
    "id = 1e6",
    "id = '1000402'",
    "id >= 1000500 AND grp = -2",
    "id >= 1000500 OR grp = 3",
    "id = 1000900 OR name = 'n3'",
    "NOT id >= 1000000",
    "NOT (id = 1000402)",
    "grp = -2",
    "grp < -1",
    "grp IS NULL AND id > 1000000",
    "grp = -1 AND id < 0",
    "id > 1000000 AND false",
    "(id >= 1000600 AND id < 1000700) OR (id BETWEEN 10 AND 12)",
]


@pytest.mark.parametrize("where", FILTERS)
def test_rows_equal_duckdb_over_every_row(tmp_path: Path, where: str) -> None:
    table = _table(tmp_path)
    view = table.indexed_snapshot()
    found = allowed_rows(view, compile_filter(where, view.snapshot.schema))
    assert np.array_equal(np.sort(found.ids), _by_duckdb(table, where)), found.how
    assert np.array_equal(found.ids, np.sort(found.ids))  # sorted, as every allowed set
    assert table.count_rows(where) == len(_by_duckdb(table, where))


def test_a_column_added_later_rules_out_the_fragments_before_it(tmp_path: Path) -> None:
    table = _table(tmp_path)
    table.add_columns(pa.field("extra", pa.int64()))  # NULL in every fragment written before
    table.add([{"id": 3_000_000, "grp": 1, "name": "late", "extra": 5}])
    view = table.indexed_snapshot()
    found = allowed_rows(view, compile_filter("extra = 5", view.snapshot.schema))
    assert table.take(found.ids, ["id"]).column("id").to_pylist() == [3_000_000]
    assert "ruled out" in found.how


def test_a_key_lookup_reads_only_the_fragment_that_may_hold_it(tmp_path: Path, monkeypatch) -> None:
    """Deleting recent rows by id one at a time (as a served table does) used to run DuckDB over every
    row of the table for each; now the fragments whose id range excludes the key are not read."""
    table = _table(tmp_path)
    seen: list[int] = []
    run = filter_mod._run

    def counting(sql: str, rows: pa.Table, what: str, text: str) -> pa.Table:
        seen.append(rows.num_rows)
        return run(sql, rows, what, text)

    monkeypatch.setattr(filter_mod, "_run", counting)
    view = table.indexed_snapshot()
    found = allowed_rows(view, compile_filter("id = 1000402", view.snapshot.schema))
    assert table.take(found.ids, ["id"]).column("id").to_pylist() == [1_000_402]
    assert "fragments ruled out by their value ranges" in found.how, found.how
    assert all(n < 100 for n in seen), seen  # never the 2,000-row fragment (upkeep may have merged the small ones)
    before = table.count_rows()
    seen.clear()
    table.delete("id = 1000402")
    assert table.count_rows() == before - 1 and table.count_rows("id = 1000402") == 0
    assert all(n < 100 for n in seen), seen


def test_may_match_reads_only_what_it_can_rule_out() -> None:
    spans = {"id": (10, 20), "empty": None}
    lits: tuple = ()
    assert not may_match(Term("id", "=", (21,)), lits, spans)
    assert may_match(Term("id", "=", (20,)), lits, spans)
    assert not may_match(Term("id", ">", (20,)), lits, spans)
    assert may_match(Term("id", ">=", (20,)), lits, spans)
    assert not may_match(Term("id", "<", (10,)), lits, spans)
    assert not may_match(Term("id", "between", (21, 30)), lits, spans)
    assert may_match(Term("id", "between", (0, 10)), lits, spans)
    assert not may_match(Term("id", "in", (1, 2, 30)), lits, spans)
    assert may_match(Term("id", "in", (1, None)), lits, spans)  # NULL in the list: left to DuckDB
    assert may_match(Term("id", "=", (25.0,)), lits, spans)  # floats: left to DuckDB
    assert may_match(Term("id", "=", ("30",)), lits, spans)  # strings: DuckDB casts them
    assert may_match(Term("id", "!=", (15,)), lits, spans)
    assert may_match(Not(Term("id", "=", (30,))), lits, spans)
    assert may_match(Term("other", "=", (30,)), lits, spans)  # not ranged
    assert not may_match(Term("empty", "=", (1,)), lits, spans)  # only NULLs
    assert may_match(Term("empty", "is_null", ()), lits, spans)
    assert not may_match(And((Term("id", "=", (15,)), Term("id", "=", (30,)))), lits, spans)
    assert may_match(Or((Term("id", "=", (15,)), Term("id", "=", (30,)))), lits, spans)
    assert not may_match(Constant(False), lits, spans) and not may_match(Constant(None), lits, spans)
