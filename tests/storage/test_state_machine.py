"""Stateful property test: random write sequences against a plain in-memory model.

A hypothesis ``RuleBasedStateMachine`` drives one table through random
add / merge_insert / update / delete / add_columns / drop_columns /
rename_column / compact / checkout / restore steps and mirrors every step in
a model: ``id -> row dict`` (row ids included) plus the column list, with a
frozen copy of both per committed version.

After every step it checks that

* the newest version equals the model, row ids included (all columns, the
  float32 vector column compared exactly);
* every version committed so far still reads, through ``checkout``, exactly as
  its model snapshot (time travel never changes);
* ``count_rows()`` and ``versions()`` agree with the model;
* row ids are unique; a write gives inserted / updated rows row ids never seen
  before; rows it does not touch keep theirs; ``restore`` brings back the old
  row id / content pairs together; and a row id always belongs to the same key.

The default test is sized for CI; the ``slow`` variant runs many more and
longer sequences (``pytest -m slow tests/storage/test_state_machine.py``).
"""

from __future__ import annotations

import copy
import math
import tempfile
from collections.abc import Callable, Collection
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import hybrid

KEY = "id"
DIM = 4
ID_RANGE = (0, 19)  # small, so that merges both hit and miss
NAME_POOL = ("x", "y", "z", "Cap", "txt", "num", "vector")  # new / renamed columns; reuses dropped names

F32 = st.floats(width=32, allow_nan=False, allow_infinity=False)  # exactly representable in float32
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "int": st.none() | st.integers(-5, 20),
    "str": st.sampled_from(["a", "b", "c", None]),
    "vec": st.none() | st.lists(F32, min_size=DIM, max_size=DIM),
    "float": st.none() | F32,
}

BASE_SCHEMA = pa.schema(
    [
        pa.field(KEY, pa.int64(), nullable=False),
        pa.field("txt", pa.string()),
        pa.field("num", pa.int64()),
        pa.field("vector", pa.list_(pa.float32(), DIM)),
    ]
)
BASE_COLUMNS = {KEY: "key", "txt": "str", "num": "int", "vector": "vec"}

Row = dict[str, Any]
Pred = Callable[[Row], "bool | None"]  # SQL three-valued logic: None is NULL


# -- SQL-ish helpers for the model -------------------------------------------------------------


def _null_or(value: Any, fn: Callable[[Any], Any]) -> Any:
    return None if value is None else fn(value)


def _c_mod(a: int, b: int) -> int:
    """SQL (C-style) remainder: the sign follows the dividend."""
    return int(math.fmod(a, b))


def _and(a: bool | None, b: bool | None) -> bool | None:
    if a is False or b is False:
        return False
    return None if a is None or b is None else True


def _or(a: bool | None, b: bool | None) -> bool | None:
    if a is True or b is True:
        return True
    return None if a is None or b is None else False


def _not(a: bool | None) -> bool | None:
    return None if a is None else not a


def _atoms(columns: dict[str, str], k: int) -> list[tuple[str, Pred]]:
    """Boolean SQL atoms over the current columns, each with its model predicate."""
    atoms: list[tuple[str, Pred]] = [
        (f"id < {k}", lambda r: r[KEY] < k),
        (f"id >= {k}", lambda r: r[KEY] >= k),
        ("id % 3 = 0", lambda r: r[KEY] % 3 == 0),
        ("id IN (1, 4, 9, 16)", lambda r: r[KEY] in (1, 4, 9, 16)),
        ("true", lambda r: True),
        ("false", lambda r: False),
    ]
    for c, kind in columns.items():
        if kind == "key":
            continue
        atoms.append((f"{c} IS NULL", lambda r, c=c: r[c] is None))
        if kind == "int":
            atoms.append((f"{c} < {k}", lambda r, c=c: _null_or(r[c], lambda v: v < k)))
            atoms.append((f"{c} % 2 = 0", lambda r, c=c: _null_or(r[c], lambda v: _c_mod(v, 2) == 0)))
        elif kind == "str":
            atoms.append((f"{c} = 'b'", lambda r, c=c: _null_or(r[c], lambda v: v == "b")))
            atoms.append((f"{c} IN ('a', 'c')", lambda r, c=c: _null_or(r[c], lambda v: v in ("a", "c"))))
            atoms.append((f"{c} <> 'a'", lambda r, c=c: _null_or(r[c], lambda v: v != "a")))
        elif kind == "vec":
            atoms.append((f"{c} IS NOT NULL", lambda r, c=c: r[c] is not None))
            atoms.append((f"{c}[1] > 0", lambda r, c=c: _null_or(r[c], lambda v: v[0] > 0)))
        elif kind == "float":
            atoms.append((f"{c} > 0", lambda r, c=c: _null_or(r[c], lambda v: v > 0)))
    return atoms


@st.composite
def wheres(draw: st.DrawFn, columns: dict[str, str]) -> tuple[str, Pred]:
    """A SQL boolean expression over `columns` and the model predicate it stands for."""
    atoms = _atoms(columns, draw(st.integers(*ID_RANGE)))
    a_sql, a = draw(st.sampled_from(atoms))
    shape = draw(st.sampled_from(["atom", "atom", "and", "or", "not"]))
    if shape == "atom":
        return a_sql, a
    if shape == "not":
        return f"NOT ({a_sql})", lambda r: _not(a(r))
    b_sql, b = draw(st.sampled_from(atoms))
    if shape == "and":
        return f"({a_sql}) AND ({b_sql})", lambda r: _and(a(r), b(r))
    return f"({a_sql}) OR ({b_sql})", lambda r: _or(a(r), b(r))


# -- column expressions for update(values_sql=...) and add_columns ------------------------------


def _sql_updates(column: str, kind: str) -> list[tuple[str, Callable[[Row], Any]]]:
    c = column
    if kind == "int":
        return [
            (f"{c} + 1", lambda r: _null_or(r[c], lambda v: v + 1)),
            ("id * 2", lambda r: r[KEY] * 2),
            (f"CASE WHEN id % 2 = 0 THEN {c} ELSE NULL END", lambda r: r[c] if r[KEY] % 2 == 0 else None),
        ]
    if kind == "str":
        return [
            (f"{c} || 'z'", lambda r: _null_or(r[c], lambda v: v + "z")),
            (f"upper({c})", lambda r: _null_or(r[c], str.upper)),
            ("'k' || CAST(id AS VARCHAR)", lambda r: f"k{r[KEY]}"),
        ]
    if kind == "vec":
        return [
            (c, lambda r: r[c]),
            (f"CASE WHEN id > 9 THEN NULL ELSE {c} END", lambda r: None if r[KEY] > 9 else r[c]),
        ]
    if kind == "float":
        return [(f"-{c}", lambda r: _null_or(r[c], lambda v: -v))]
    raise AssertionError(kind)


def _sql_new_columns(columns: dict[str, str]) -> list[tuple[str, str, Callable[[Row], Any]]]:
    """(SQL expression, kind of the result, model function) for add_columns."""
    out: list[tuple[str, str, Callable[[Row], Any]]] = [
        ("id * 10", "int", lambda r: r[KEY] * 10),
        ("CASE WHEN id % 2 = 0 THEN 'even' ELSE 'odd' END", "str", lambda r: "even" if r[KEY] % 2 == 0 else "odd"),
    ]
    for c, kind in columns.items():
        if kind == "int":
            out.append((f"{c} + 100", "int", lambda r, c=c: _null_or(r[c], lambda v: v + 100)))
        elif kind == "str":
            out.append((f"upper({c})", "str", lambda r, c=c: _null_or(r[c], str.upper)))
        elif kind == "vec":
            out.append((f"{c}[2]", "float", lambda r, c=c: _null_or(r[c], lambda v: v[1])))
    return out


def _fn_new_columns(
    columns: dict[str, str], name: str
) -> list[tuple[Callable[[pa.RecordBatch], Any], list[str] | None, str, Callable[[Row], Any]]]:
    """(batch function, input_columns, kind of the result, model function) for add_columns."""
    out: list[tuple[Callable[[pa.RecordBatch], Any], list[str] | None, str, Callable[[Row], Any]]] = [
        (
            lambda b: pa.table({name: pc.add(b.column(KEY), 1000)}),
            None,  # all columns
            "int",
            lambda r: r[KEY] + 1000,
        )
    ]
    for c, kind in columns.items():
        if kind == "str":
            out.append(
                (
                    lambda b, c=c: {name: pc.utf8_length(b.column(c))},
                    [c],
                    "int",
                    lambda r, c=c: _null_or(r[c], len),
                )
            )
        elif kind == "int":
            out.append(
                (
                    lambda b, c=c: pa.record_batch([pc.multiply(b.column(c), -3)], names=[name]),
                    [KEY, c],
                    "int",
                    lambda r, c=c: _null_or(r[c], lambda v: -3 * v),
                )
            )
        elif kind == "vec":
            out.append(
                (
                    lambda b, c=c: {name: pc.list_element(b.column(c), 0)},
                    [c],
                    "float",
                    lambda r, c=c: _null_or(r[c], lambda v: v[0]),
                )
            )
    return out


# -- the state machine --------------------------------------------------------------------------


class TableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="hybrid-state-")
        self.db = hybrid.connect(self._tmp.name, upkeep=None)  # the model counts every version
        self.table: hybrid.Table | None = None
        self.columns: dict[str, str] = {}  # name -> kind, in schema order
        self.rows: dict[int, Row] = {}  # id -> {"_rowid": ..., column: value, ...}
        self.version = 0
        self.snapshots: dict[int, tuple[dict[str, str], dict[int, Row]]] = {}
        self.issued: set[int] = set()  # every row id ever seen
        self.owner: dict[int, int] = {}  # row id -> the key it always belongs to

    def teardown(self) -> None:
        self._tmp.cleanup()

    # -- helpers -------------------------------------------------------------------------

    @property
    def t(self) -> hybrid.Table:
        assert self.table is not None
        return self.table

    def _value_columns(self) -> list[str]:
        return [c for c, kind in self.columns.items() if kind != "key"]

    def _free_ids(self) -> list[int]:
        return [i for i in range(ID_RANGE[0], ID_RANGE[1] + 1) if i not in self.rows]

    def _draw_rows(self, data: st.DataObject, ids: list[int], omit: frozenset[str] = frozenset()) -> list[Row]:
        order = [c for c in self.columns if c not in omit]
        order = data.draw(st.permutations(order))
        return [{c: (i if c == KEY else data.draw(VALUES[self.columns[c]], label=c)) for c in order} for i in ids]

    def _draw_omit(self, data: st.DataObject) -> frozenset[str]:
        return frozenset(data.draw(st.sets(st.sampled_from(self._value_columns()))) if self._value_columns() else ())

    def _as_input(self, data: st.DataObject, rows: list[Row]) -> Any:
        """The same rows as a list of dicts or as a dict of columns."""
        if data.draw(st.booleans(), label="columnar input"):
            return {c: [r[c] for r in rows] for c in rows[0]}
        return rows

    def _model_row(self, source: Row, rowid: int | None = None) -> Row:
        row: Row = {"_rowid": rowid}
        row.update({c: source.get(c) for c in self.columns})
        return row

    def _committed(self, commit: hybrid.Commit, fresh: Collection[int] = (), new_version: bool = True) -> None:
        """Check `commit`, learn the row ids of the `fresh` (inserted/updated) keys, record the version."""
        if not new_version:
            assert commit.version == self.version
            return
        assert commit.version == self.version + 1, (commit, self.version)
        assert self.t.version == commit.version
        self.version = commit.version
        live = self.t.to_arrow([KEY], with_rowid=True)
        by_key = dict(zip(live.column(KEY).to_pylist(), live.column("_rowid").to_pylist(), strict=True))
        assert len(by_key) == live.num_rows, "duplicate keys in the table"
        assert set(by_key) == set(self.rows), (sorted(by_key), sorted(self.rows))
        new_ids = [by_key[k] for k in fresh]
        assert len(set(new_ids)) == len(new_ids), f"fresh rows share row ids: {new_ids}"
        reused = set(new_ids) & self.issued
        assert not reused, f"row ids {sorted(reused)} were given out again"
        for k in fresh:
            self.rows[k]["_rowid"] = by_key[k]
        self.issued.update(new_ids)
        self.snapshots[self.version] = (dict(self.columns), copy.deepcopy(self.rows))

    def _check_read(self, table: pa.Table, columns: dict[str, str], rows: dict[int, Row], what: str) -> None:
        assert table.column_names == ["_rowid", *columns], (what, table.column_names, list(columns))
        for name, kind in columns.items():
            if kind == "vec":
                assert table.schema.field(name).type == pa.list_(pa.float32(), DIM), what
            elif kind == "key":
                assert table.schema.field(name).type == pa.int64(), what
        got = sorted(table.to_pylist(), key=lambda r: r[KEY])
        want = [rows[k] for k in sorted(rows)]
        assert got == want, f"{what}:\n got  {got}\n want {want}"
        rowids = table.column("_rowid").to_pylist()
        assert len(set(rowids)) == len(rowids), f"{what}: duplicate row ids {rowids}"
        for r in got:
            owner = self.owner.setdefault(r["_rowid"], r[KEY])
            assert owner == r[KEY], f"{what}: row id {r['_rowid']} belonged to key {owner}, now to {r[KEY]}"

    # -- setup ---------------------------------------------------------------------------

    @initialize(data=st.data())
    def create(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(st.integers(*ID_RANGE), unique=True, max_size=8), label="initial ids")
        self.columns = dict(BASE_COLUMNS)
        rows = self._draw_rows(data, ids)
        if rows:
            self.table = self.db.create_table("t", rows, schema=BASE_SCHEMA)
        else:
            self.table = self.db.create_table("t", schema=BASE_SCHEMA)
        self.rows = {r[KEY]: self._model_row(r) for r in rows}
        assert self.t.version == 1
        self.version = 0
        self._committed(hybrid.Commit(1, "create"), fresh=set(self.rows))

    # -- writes --------------------------------------------------------------------------

    @rule(data=st.data())
    def add(self, data: st.DataObject) -> None:
        free = self._free_ids()
        if not free:
            return
        ids = data.draw(st.lists(st.sampled_from(free), unique=True, min_size=1, max_size=6), label="ids")
        rows = self._draw_rows(data, ids, self._draw_omit(data))
        commit = self.t.add(self._as_input(data, rows))
        assert (commit.operation, commit.inserted, commit.updated, commit.deleted) == ("append", len(ids), 0, 0)
        for r in rows:
            self.rows[r[KEY]] = self._model_row(r)
        self._committed(commit, fresh=set(ids))

    @rule(
        data=st.data(),
        when_matched=st.sampled_from(["update", "update", "ignore"]),
        when_not_matched=st.sampled_from(["insert", "insert", "ignore"]),
        by_source=st.sampled_from(["keep", "keep", "delete"]),
    )
    def merge_insert(self, data: st.DataObject, when_matched: str, when_not_matched: str, by_source: str) -> None:
        ids = data.draw(st.lists(st.integers(*ID_RANGE), unique=True, min_size=1, max_size=8), label="source ids")
        rows = self._draw_rows(data, ids, self._draw_omit(data))
        commit = self.t.merge_insert(
            self._as_input(data, rows),
            on=KEY,
            when_matched=when_matched,
            when_not_matched=when_not_matched,
            when_not_matched_by_source=by_source,
        )
        matched = [r for r in rows if r[KEY] in self.rows]
        unmatched = [r for r in rows if r[KEY] not in self.rows]
        fresh: set[int] = set()
        if when_matched == "update":
            for r in matched:
                self.rows[r[KEY]].update({c: v for c, v in r.items()})
                fresh.add(r[KEY])
        if when_not_matched == "insert":
            for r in unmatched:
                self.rows[r[KEY]] = self._model_row(r)
                fresh.add(r[KEY])
        deleted = 0
        if by_source == "delete":
            gone = [k for k in self.rows if k not in set(ids)]
            for k in gone:
                del self.rows[k]
            deleted = len(gone)
        updated = len(matched) if when_matched == "update" else 0
        inserted = len(unmatched) if when_not_matched == "insert" else 0
        assert (commit.inserted, commit.updated, commit.deleted) == (inserted, updated, deleted), commit
        self._committed(commit, fresh=fresh)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        targets = self._value_columns()
        if not targets:
            return
        where, pred = data.draw(st.none() | wheres(self.columns), label="where") or (None, lambda r: True)
        chosen = data.draw(st.lists(st.sampled_from(targets), unique=True, min_size=1, max_size=2), label="columns")
        values: dict[str, Any] = {}
        values_sql: dict[str, str] = {}
        compute: dict[str, Callable[[Row], Any]] = {}
        for c in chosen:
            kind = self.columns[c]
            if data.draw(st.booleans(), label=f"sql for {c}"):
                sql, fn = data.draw(st.sampled_from(_sql_updates(c, kind)), label=f"expr for {c}")
                values_sql[c], compute[c] = sql, fn
            else:
                v = data.draw(VALUES[kind], label=f"value for {c}")
                values[c], compute[c] = v, (lambda r, v=v: v)
        commit = self.t.update(where, values=values or None, values_sql=values_sql or None)
        hit = [k for k, r in self.rows.items() if pred(r) is True]
        for k in hit:
            old = dict(self.rows[k])
            self.rows[k].update({c: fn(old) for c, fn in compute.items()})
        assert (commit.operation, commit.inserted, commit.updated, commit.deleted) == ("update", 0, len(hit), 0)
        self._committed(commit, fresh=set(hit))

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        where, pred = data.draw(wheres(self.columns), label="where")
        commit = self.t.delete(where)
        gone = [k for k, r in self.rows.items() if pred(r) is True]
        for k in gone:
            del self.rows[k]
        assert (commit.operation, commit.inserted, commit.updated, commit.deleted) == ("delete", 0, 0, len(gone))
        self._committed(commit)

    @rule(data=st.data())
    def add_column_sql(self, data: st.DataObject) -> None:
        free = [n for n in NAME_POOL if n not in self.columns]
        if not free:
            return
        name = data.draw(st.sampled_from(free), label="name")
        sql, kind, fn = data.draw(st.sampled_from(_sql_new_columns(self.columns)), label="expression")
        commit = self.t.add_columns({name: sql})
        assert commit.operation == "add_columns"
        for r in self.rows.values():
            r[name] = fn(r)
        self.columns[name] = kind
        self._committed(commit)

    @rule(data=st.data())
    def add_column_fn(self, data: st.DataObject) -> None:
        free = [n for n in NAME_POOL if n not in self.columns]
        if not free:
            return
        name = data.draw(st.sampled_from(free), label="name")
        fn, inputs, kind, model = data.draw(st.sampled_from(_fn_new_columns(self.columns, name)), label="function")
        batch_size = data.draw(st.sampled_from([1, 3, 8_192]), label="batch_size")
        commit = self.t.add_columns(fn, input_columns=inputs, batch_size=batch_size)
        assert commit.operation == "add_columns"
        for r in self.rows.values():
            r[name] = model(r)
        self.columns[name] = kind
        self._committed(commit)

    @rule(data=st.data())
    def drop_columns(self, data: st.DataObject) -> None:
        targets = self._value_columns()
        if not targets:
            return
        drop = data.draw(st.lists(st.sampled_from(targets), unique=True, min_size=1, max_size=2), label="drop")
        commit = self.t.drop_columns(drop[0] if len(drop) == 1 else drop)
        assert commit.operation == "drop_columns"
        for c in drop:
            del self.columns[c]
            for r in self.rows.values():
                del r[c]
        self._committed(commit)

    @rule(data=st.data())
    def rename_column(self, data: st.DataObject) -> None:
        targets = self._value_columns()
        free = [n for n in NAME_POOL if n not in self.columns]
        if not targets or not free:
            return
        old = data.draw(st.sampled_from(targets), label="old")
        new = data.draw(st.sampled_from(free), label="new")
        commit = self.t.rename_column(old, new)
        assert commit.operation == "rename_column"
        self.columns = {(new if c == old else c): kind for c, kind in self.columns.items()}
        for k, r in self.rows.items():
            self.rows[k] = {(new if c == old else c): v for c, v in r.items()}
        self._committed(commit)

    @rule(target_rows=st.integers(1, 16))
    def compact(self, target_rows: int) -> None:
        before = self.version
        commit = self.t.compact(target_rows=target_rows)
        assert commit.operation == "compact"
        self._committed(commit, new_version=commit.version != before)

    @precondition(lambda self: len(self.snapshots) > 1)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        v = data.draw(st.sampled_from(sorted(self.snapshots)), label="restore version")
        commit = self.t.restore(v)
        assert commit.operation == "restore"
        columns, rows = self.snapshots[v]
        self.columns = dict(columns)
        self.rows = copy.deepcopy(rows)
        self._committed(commit)  # no fresh rows: the old row ids come back with their content

    # -- reads ---------------------------------------------------------------------------

    @rule(data=st.data())
    def checkout(self, data: st.DataObject) -> None:
        v = data.draw(st.sampled_from(sorted(self.snapshots)), label="checkout version")
        columns, rows = self.snapshots[v]
        old = self.t.checkout(v)
        assert old.version == v and old.read_only
        assert old.count_rows() == len(rows)
        self._check_read(old.to_arrow(with_rowid=True), columns, rows, f"checkout({v})")
        where, pred = data.draw(wheres(columns), label="where")
        hit = sorted(k for k, r in rows.items() if pred(r) is True)
        assert sorted(old.to_arrow([KEY], where).column(KEY).to_pylist()) == hit, (v, where)
        assert old.count_rows(where) == len(hit), (v, where)
        rowids = [rows[k]["_rowid"] for k in hit][::-1]
        taken = old.take(rowids)
        assert taken.to_pylist() == [rows[k] for k in hit][::-1], (v, "take")
        with pytest.raises(hybrid.ReadOnlyError):
            old.delete("true")
        assert self.t.version == self.version  # the checkout left the table alone

    @rule(data=st.data())
    def query(self, data: st.DataObject) -> None:
        where, pred = data.draw(wheres(self.columns), label="where")
        cols = data.draw(st.lists(st.sampled_from(list(self.columns)), unique=True, min_size=1), label="columns")
        got = self.t.to_arrow(cols, where)
        assert got.column_names == cols
        batch_size = data.draw(st.sampled_from([1, 2, 5]), label="batch_size")
        scanned = pa.Table.from_batches(list(self.t.scan(cols, where, batch_size)), schema=got.schema)
        assert scanned.equals(got), ("scan", where, cols, batch_size)
        hit = [r for _, r in sorted(self.rows.items()) if pred(r) is True]
        want = [{c: r[c] for c in cols} for r in hit]
        order = sorted(got.to_pylist(), key=lambda r: r[KEY]) if KEY in cols else None
        if order is not None:
            assert order == want, (where, cols)
        else:
            assert got.num_rows == len(want), (where, cols)
        assert self.t.count_rows(where) == len(hit), where

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def newest_matches_model(self) -> None:
        if self.table is None:
            return
        assert self.t.version == self.version
        assert self.t.count_rows() == len(self.rows)
        self._check_read(self.t.to_arrow(with_rowid=True), self.columns, self.rows, "newest")
        rowids = [r["_rowid"] for _, r in sorted(self.rows.items())][::-1]
        assert self.t.take(rowids).to_pylist() == [r for _, r in sorted(self.rows.items())][::-1], "take"
        dead = sorted(self.issued - set(rowids))
        if dead:
            with pytest.raises(hybrid.RowNotFoundError):
                self.t.take(dead[:1])

    @invariant()
    def every_version_still_reads_the_same(self) -> None:
        if self.table is None:
            return
        infos = self.t.versions()
        assert [i.version for i in infos] == sorted(self.snapshots)
        assert [i.num_rows for i in infos] == [len(self.snapshots[v][1]) for v in sorted(self.snapshots)]
        for v, (columns, rows) in self.snapshots.items():
            self._check_read(self.t.checkout(v).to_arrow(with_rowid=True), columns, rows, f"version {v}")


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def test_table_state_machine() -> None:
    run_state_machine_as_test(TableMachine, settings=settings(max_examples=40, stateful_step_count=25, **_SETTINGS))


@pytest.mark.slow
def test_table_state_machine_long() -> None:
    run_state_machine_as_test(TableMachine, settings=settings(max_examples=250, stateful_step_count=50, **_SETTINGS))
