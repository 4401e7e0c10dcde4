"""Bad input raises a clear error naming the problem and leaves the table exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from tests.conftest import make_rows


def files_of(table: hybrid.Table) -> set[str]:
    return {p.relative_to(table.path).as_posix() for p in table.path.rglob("*") if p.is_file()}


BAD_WRITES: list[tuple[str, Callable[[hybrid.Table], object], type[Exception], str]] = [
    ("unknown column", lambda t: t.add([{"id": 1, "nope": 1}]), hybrid.SchemaError, "nope"),
    ("wrong type", lambda t: t.add([{"id": "one"}]), hybrid.SchemaError, "'id'"),
    ("short vector", lambda t: t.add([{"id": 1, "vector": [1.0, 2.0]}]), hybrid.VectorError, "length 2"),
    ("NaN vector", lambda t: t.add([{"id": 1, "vector": [1.0, np.nan, 0.0, 0.0]}]), hybrid.VectorError, "NaN"),
    ("inf vector", lambda t: t.add([{"id": 1, "vector": [1.0, np.inf, 0.0, 0.0]}]), hybrid.VectorError, "inf"),
    ("not vectors", lambda t: t.add([{"id": 1, "vector": "abc"}]), hybrid.VectorError, "vector"),
    ("reserved name", lambda t: t.add_columns({"_score": "1"}), hybrid.SchemaError, "reserved"),
    ("existing column", lambda t: t.add_columns({"year": "1"}), hybrid.SchemaError, "already exists"),
    ("unknown column in where", lambda t: t.delete("colour = 'red'"), hybrid.FilterError, "colour"),
    ("malformed where", lambda t: t.delete("id >"), hybrid.FilterError, "malformed"),
    ("non-boolean where", lambda t: t.delete("id + 1"), hybrid.FilterError, "boolean"),
    (
        "where reads a file",
        lambda t: t.delete("id in (select 1 from read_csv('/etc/passwd'))"),
        hybrid.FilterError,
        "subquer",
    ),
    (
        "where breaks out",
        lambda t: t.delete("true) UNION SELECT * FROM read_csv('/etc/passwd') WHERE (true"),
        hybrid.FilterError,
        "single expression",
    ),
    ("where attaches", lambda t: t.delete("true; ATTACH 'x.db'"), hybrid.FilterError, "malformed"),
    ("update unknown column", lambda t: t.update("id = 1", {"colour": "red"}), hybrid.SchemaError, "colour"),
    (
        "update bad sql",
        lambda t: t.update("id = 1", values_sql={"year": "nosuchfn(year)"}),
        hybrid.FilterError,
        "nosuchfn",
    ),
    (
        "duplicate merge keys",
        lambda t: t.merge_insert([{"id": 1}, {"id": 1}], on="id"),
        hybrid.DuplicateKeyError,
        "more than once",
    ),
    ("merge key missing", lambda t: t.merge_insert([{"text": "x"}], on="id"), hybrid.SchemaError, "key"),
    ("merge unknown key", lambda t: t.merge_insert([{"id": 1}], on="nope"), hybrid.SchemaError, "nope"),
    ("add_columns wrong length", lambda t: t.add_columns(pa.table({"z": [1, 2]})), hybrid.SchemaError, "rows"),
    (
        "add_columns fn wrong rows",
        lambda t: t.add_columns(lambda b: {"z": [1]}, input_columns=["id"]),
        hybrid.SchemaError,
        "rows",
    ),
    ("drop unknown", lambda t: t.drop_columns(["nope"]), hybrid.SchemaError, "nope"),
    ("drop all", lambda t: t.drop_columns(["id", "text", "lang", "year", "vector"]), hybrid.SchemaError, "every"),
    ("rename onto existing", lambda t: t.rename_column("text", "lang"), hybrid.SchemaError, "already exists"),
    ("empty list", lambda t: t.add([]), hybrid.SchemaError, "empty"),
    ("unsupported data", lambda t: t.add(42), hybrid.SchemaError, "unsupported"),
]


@pytest.mark.parametrize("case", BAD_WRITES, ids=[c[0] for c in BAD_WRITES])
def test_bad_write_is_refused_and_changes_nothing(docs: hybrid.Table, case: tuple) -> None:
    _, write, error, fragment = case
    before_version, before_rows, before_files = docs.version, docs.to_arrow(with_rowid=True), files_of(docs)
    with pytest.raises(error, match=fragment):
        write(docs)
    assert docs.version == before_version
    assert docs.to_arrow(with_rowid=True).equals(before_rows)
    assert files_of(docs) == before_files  # no orphan files either


def test_nan_in_a_later_batch_writes_nothing(docs: hybrid.Table) -> None:
    good = pa.table({"id": [100], "vector": pa.array([[0.0] * 4], pa.list_(pa.float32(), 4))})
    bad = pa.table({"id": [101], "vector": pa.array([[np.nan] * 4], pa.list_(pa.float32(), 4))})
    reader = pa.RecordBatchReader.from_batches(good.schema, good.to_batches() + bad.to_batches())
    before = files_of(docs)
    with pytest.raises(hybrid.VectorError, match="row 0 holds NaN"):
        docs.add(reader)
    assert docs.count_rows() == 20 and files_of(docs) == before


def test_errors_subclass_builtins() -> None:
    assert issubclass(hybrid.SchemaError, ValueError)
    assert issubclass(hybrid.FilterError, ValueError)
    assert issubclass(hybrid.CommitConflictError, RuntimeError)
    assert issubclass(hybrid.TableNotFoundError, LookupError)
    assert issubclass(hybrid.RowNotFoundError, KeyError)


def test_database_errors(db: hybrid.Database, tmp_path: Path) -> None:
    db.create_table("t", make_rows([1]))
    with pytest.raises(hybrid.TableExistsError, match="already exists"):
        db.create_table("t", make_rows([2]))
    with pytest.raises(hybrid.TableNotFoundError, match="no table 'x'"):
        db.open_table("x")
    with pytest.raises(ValueError, match="invalid table name"):
        db.create_table("../escape", make_rows([1]))
    with pytest.raises(hybrid.SchemaError, match="needs data or a schema"):
        db.create_table("u")
    with pytest.raises(hybrid.SchemaError, match="reserved"):
        db.create_table("u", [{"_rowid": 1}])
    assert db.table_names() == ["t"]


def test_take_missing_rowid(docs: hybrid.Table) -> None:
    docs.delete("id = 3")
    with pytest.raises(hybrid.RowNotFoundError, match=r"not live rows .* \[3\]"):
        docs.take([1, 3])
    with pytest.raises(hybrid.RowNotFoundError, match="never negative"):
        docs.take([-1])
    with pytest.raises(hybrid.RowNotFoundError):
        docs.take([10_000])


def test_a_column_selected_twice_is_named(docs: hybrid.Table) -> None:
    """Before, the vector path raised a bare KeyError that called the column missing."""
    docs.create_fts_index("text")
    for q in (docs.search(np.ones(4, np.float32), query_type="vector"), docs.search("number", query_type="fts")):
        with pytest.raises(hybrid.SchemaError, match=r"\['year'\] more than once"):
            q.select(["year", "id", "year"])
        assert {"year", "id"} <= set(q.select(["year", "id"]).limit(1).to_arrow().column_names)
