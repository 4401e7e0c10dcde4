"""Scalar indexes answer filters exactly as DuckDB does, at every version.

A hypothesis property test builds random tables (ints, floats with NaN, float32,
strings with quotes and non-ASCII, booleans, string lists; NULLs everywhere),
indexes random columns with random kinds, changes the table after the build
(adds, deletes, updates, compaction) and compares the rows a random filter lets
through a search with DuckDB's answer over the same rows.
"""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hybrid
from hybrid.errors import FilterError, SchemaError

SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("i", pa.int32()),
        ("f", pa.float64()),
        ("g", pa.float32()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("tags", pa.list_(pa.string())),
        ("v", pa.list_(pa.float32(), 2)),
    ]
)
WORDS = ["a", "b", "B", "é", "Z", "o'k", ""]
INDEXABLE = {"i": ("bitmap", "btree"), "f": ("btree", "bitmap"), "g": ("btree",), "s": ("bitmap", "btree"),
             "b": ("bitmap",), "tags": ("label_list",)}  # fmt: skip


def sql_string(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def sql_number(x: float | int) -> str:
    return str(x)


ints = st.one_of(st.none(), st.integers(-3, 3))
floats = st.one_of(st.none(), st.sampled_from([-1.5, 0.0, 0.1, 0.5, 2.0, math.nan]))
words = st.one_of(st.none(), st.sampled_from(WORDS))
bools = st.one_of(st.none(), st.booleans())
tag_lists = st.one_of(st.none(), st.lists(st.one_of(st.none(), st.sampled_from(WORDS)), max_size=3))


@st.composite
def rows(draw: st.DrawFn, n: int, start: int) -> list[dict]:
    return [
        {"id": start + k, "i": draw(ints), "f": draw(floats), "g": draw(floats), "s": draw(words), "b": draw(bools),
         "tags": draw(tag_lists), "v": [1.0, float(k)]}
        for k in range(n)
    ]  # fmt: skip


def literal_for(column: str, draw: st.DrawFn) -> str:
    if column == "i":
        return sql_number(draw(st.sampled_from([-4, -1, 0, 1, 2, 3, 99999999999])))
    if column in ("f", "g"):
        return draw(st.sampled_from(["0.1", "-1.5", "0", "2", "0.5", "1e-1", "-0.25", "3"]))
    if column == "s":
        return sql_string(draw(st.sampled_from(WORDS)))
    return draw(st.sampled_from(["true", "false"]))


@st.composite
def leaf(draw: st.DrawFn) -> str:
    column = draw(st.sampled_from(["i", "f", "g", "s", "b", "tags"]))
    if column == "tags":
        fn = draw(st.sampled_from(["list_contains", "list_has", "array_contains"]))
        return f"{fn}(tags, {sql_string(draw(st.sampled_from(WORDS)))})"
    form = draw(st.sampled_from(["cmp", "cmp", "in", "between", "null", "opaque", "flipped"]))
    if form == "cmp":
        op = draw(st.sampled_from(["=", "<>", "!=", "<", "<=", ">", ">="]))
        return f"{column} {op} {literal_for(column, draw)}"
    if form == "flipped":
        return f"{literal_for(column, draw)} < {column}"
    if form == "in":
        values = [literal_for(column, draw) for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            values.append("NULL")
        return f"{column} {draw(st.sampled_from(['IN', 'NOT IN']))} ({', '.join(values)})"
    if form == "between":
        lo, hi = literal_for(column, draw), literal_for(column, draw)
        return f"{column} {draw(st.sampled_from(['BETWEEN', 'NOT BETWEEN']))} {lo} AND {hi}"
    if form == "null":
        return f"{column} IS {draw(st.sampled_from(['NULL', 'NOT NULL']))}"
    return draw(st.sampled_from(["i + 1 > 2", "length(s) = 1", "coalesce(i, 0) = 0", "f * 2 < 1"]))  # only DuckDB


def predicates() -> st.SearchStrategy[str]:
    return st.recursive(
        leaf(),
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) AND ({p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]}) OR ({p[1]})"),
            inner.map(lambda p: f"NOT ({p})"),
        ),
        max_leaves=4,
    )


def duckdb_rows(table: hybrid.Table, where: str) -> set[int]:
    data = table.to_arrow()  # noqa: F841 - read by DuckDB below
    return {r[0] for r in duckdb.sql(f"SELECT id FROM data WHERE {where}").fetchall()}


def engine_rows(table: hybrid.Table, where: str) -> set[int]:
    hits = table.search([1.0, 0.0], query_type="vector").where(where).select(["id"]).limit(100_000).to_arrow()
    return set(hits.column("id").to_pylist())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_scalar_indexes_answer_like_duckdb(tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    db = hybrid.connect(tmp_path_factory.mktemp("db"))
    first = data.draw(rows(data.draw(st.integers(0, 40)), 0))
    t = db.create_table("t", pa.Table.from_pylist(first, schema=SCHEMA))
    for column in data.draw(st.lists(st.sampled_from(sorted(INDEXABLE)), unique=True, min_size=1)):
        t.create_scalar_index(column, kind=data.draw(st.sampled_from(INDEXABLE[column])))
    next_id = len(first)
    for change in data.draw(st.lists(st.sampled_from(["add", "delete", "update", "compact", "optimize"]), max_size=3)):
        if change == "add":
            more = data.draw(rows(data.draw(st.integers(1, 10)), next_id))
            next_id += len(more)
            t.add(pa.Table.from_pylist(more, schema=SCHEMA))
        elif change == "delete":
            t.delete(data.draw(predicates()))
        elif change == "update":
            t.update(data.draw(predicates()), values={"i": data.draw(st.integers(-3, 3)), "s": "b"})
        elif change == "compact":
            t.compact(target_rows=64)
        else:
            t.optimize()
    for where in data.draw(st.lists(predicates(), min_size=1, max_size=4)):
        want = duckdb_rows(t, where)
        assert engine_rows(t, where) == want, where
        assert t.count_rows(where) == len(want), where


def test_a_covered_filter_is_answered_by_the_index(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", [{"id": k, "cat": k % 10, "v": [1.0, float(k)]} for k in range(200)])
    t.create_scalar_index("cat")
    plan = t.search([1.0, 0.0], query_type="vector").where("cat = 3").explain()
    assert "20 rows from scalar index on cat" in plan
    t.add([{"id": 1000, "cat": 3, "v": [1.0, 0.0]}])
    plan = t.search([1.0, 0.0], query_type="vector").where("cat = 3 AND id * 2 > 0").explain()
    assert "21 rows from scalar index on cat, then DuckDB on those rows, DuckDB on 1 rows added since" in plan
    stats = {s["name"]: s for s in t.index_stats()}["scalar:cat"]
    assert stats["index_type"] == "bitmap" and stats["distinct_values"] == 10 and stats["unindexed_rows"] == 1


def test_auto_kind_and_refusals(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table(
        "t", [{"id": k, "price": k * 0.5, "tags": ["x"], "v": [1.0, 2.0]} for k in range(2_000)]
    )
    t.create_scalar_index("price")
    t.create_scalar_index("tags")
    kinds = {s["name"]: s.get("index_type") for s in t.index_stats()}
    assert kinds == {"scalar:price": "btree", "scalar:tags": "label_list"}
    with pytest.raises(SchemaError, match="number, string or boolean"):
        t.create_scalar_index("v")
    with pytest.raises(SchemaError, match="label_list index needs a list column"):
        t.create_scalar_index("id", kind="label_list", name="other")
    with pytest.raises(ValueError, match="kind must be"):
        t.create_scalar_index("id", kind="hash")  # type: ignore[arg-type]
    with pytest.raises(hybrid.HybridError, match="already exists"):
        t.create_scalar_index("price")


def test_btree_ranges_span_whole_blocks(tmp_path: Path) -> None:
    """Ranges wider than one block bitmap (4,096 rows) use the block bitmaps plus the two edges."""
    n = 20_000
    rng = np.random.default_rng(3)
    values = rng.integers(0, 50_000, size=n)
    t = hybrid.connect(tmp_path).create_table(
        "t",
        pa.table(
            {
                "id": np.arange(n),
                "x": values,
                "v": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(2 * n, np.float32)), 2),
            }
        ),
    )
    t.create_scalar_index("x", kind="btree")
    for lo, hi in [(0, 50_000), (1_000, 31_000), (12_345, 12_400), (49_999, 60_000)]:
        where = f"x >= {lo} AND x < {hi}"
        assert engine_rows(t, where) == set(np.flatnonzero((values >= lo) & (values < hi)).tolist()), where


def test_filters_that_differ_only_in_literals_share_one_compiled_plan() -> None:
    from hybrid.query.filter import compile_filter

    schema = pa.schema([("user_id", pa.int64()), ("name", pa.string()), ("year", pa.int32())])
    a, b = compile_filter("user_id = 17", schema), compile_filter("user_id = 18", schema)
    assert a.tree is b.tree and (a.literals, b.literals) == ((17,), (18,))
    c = compile_filter("user_id = -4 AND name = 'o''k'", schema)
    d = compile_filter("user_id = -9 AND name = 'é'", schema)
    assert c.tree is d.tree and d.literals == (9, "é")
    assert compile_filter("user_id > 17", schema).tree is not a.tree  # another operator
    assert compile_filter("year = 17", schema).tree is not a.tree  # another column
    assert compile_filter("user_id = 1.5", schema).tree is not a.tree  # another kind of literal


@pytest.mark.parametrize(
    "where",
    [
        "user_id = 1; DROP TABLE x",
        "user_id = 1) UNION SELECT 1 FROM (SELECT 1",
        "user_id = (SELECT 1)",
        "user_id = 1 -- comment",
        "current_setting('threads') = '1'",
    ],
)
def test_injection_is_refused_even_after_a_shape_is_cached(where: str) -> None:
    from hybrid.query.filter import compile_filter

    schema = pa.schema([("user_id", pa.int64())])
    compile_filter("user_id = 2", schema)
    with pytest.raises(FilterError):
        compile_filter(where, schema)


def test_a_quote_inside_a_literal_stays_inside_it(tmp_path: Path) -> None:
    t = hybrid.connect(tmp_path).create_table("t", [{"id": 1, "name": "x", "v": [1.0, 0.0]}])
    t.create_scalar_index("name")
    assert engine_rows(t, "name = 'x'") == {1}
    assert engine_rows(t, "name = 'x'' OR ''1''=''1'") == set()
    with pytest.raises(FilterError, match="invalid where"):
        engine_rows(t, "id = 'abc'")  # same shape as id = '1', a value DuckDB cannot convert


@pytest.mark.parametrize(
    ("where", "shape"),
    [
        ("a = 5", "a = \x00i"),
        ("v2 = -3 AND name = 'o''k'", "v2 = -\x00i AND name = \x00s"),
        ('"col 1" = 2.5', '"col 1" = \x00n'),
        ("a = 1e3 OR b IN (1, 2)", "a = \x00e OR b IN (\x00i, \x00i)"),
        ("E'x' = s", None),  # an escape string's value is not its text
        ("1abc = 2", None),
        ("a = 1 -- comment", None),
        ("a = 1 /* comment */", None),
        ("x = 'unterminated", None),
        ("$1 = a", None),
    ],
)
def test_the_shape_scan_reads_literals_or_declines(where: str, shape: str | None) -> None:
    from hybrid.query.predicate import shape_of

    found = shape_of(where)
    assert (found[0] if found else None) == shape
