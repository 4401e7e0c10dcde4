"""In-process scopes: db.scoped(where=..., tables=...) bounds every read and write, and cannot be widened."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

import hybrid
from hybrid import AccessError, FilterError, RowNotFoundError, TableNotFoundError
from hybrid.query.row_scope import combine

TENANTS = ("acme", "globex", "initech")
WIDENING = [
    "1=1) OR (1=1",
    "true OR true",
    "1=1 --",
    "1=1 /* ",
    "NOT (tenant = 'acme')",
    "tenant = 'globex'",
    "tenant = 'acme' OR tenant = 'globex'",
    "tenant IN ('acme', 'globex', 'initech')",
    "tenant != 'nobody'",
    "(1=1)) OR ((1=1",
    "1=1) OR tenant = 'globex' OR (1=1",
    "tenant = 'acme' OR true",
    "coalesce(tenant, 'x') IS NOT NULL",
]
SUBQUERIES = [
    "tenant IN (SELECT tenant FROM __hybrid_rows)",
    "EXISTS (SELECT 1)",
    "(SELECT true)",
    "tenant = 'acme'; DELETE FROM __hybrid_rows",
]


def rows(n: int = 60) -> list[dict[str, object]]:
    return [
        {
            "id": i,
            "tenant": TENANTS[i % 3],
            "text": f"note {i} about {'refunds' if i % 2 else 'invoices'} for {TENANTS[i % 3]}",
            "vector": [float(i % 7), 1.0, float(i % 3)],
        }
        for i in range(n)
    ]


@pytest.fixture
def db(tmp_path: Path) -> hybrid.Database:
    db = hybrid.connect(tmp_path)
    t = db.create_table("docs", rows())
    t.create_fts_index(["text"])
    t.create_scalar_index("tenant")
    db.create_table("billing", [{"tenant": "acme", "amount": 3}])
    db.create_table("docs_archive", [{"tenant": "acme", "text": "old"}])
    return db


def tenants_of(table: pa.Table) -> set[str]:
    return set(table["tenant"].to_pylist())


def test_reads_counts_and_searches_see_only_the_scope(db: hybrid.Database) -> None:
    acme = db.scoped(where="tenant = 'acme'", tables=["docs*"]).open_table("docs")
    assert acme.count_rows() == 20 and acme.count_rows("id < 10") == 4
    assert tenants_of(acme.to_arrow()) == {"acme"} and acme.to_arrow().num_rows == 20
    hits = acme.search("refunds").limit(50).to_arrow()
    assert hits.num_rows > 0 and tenants_of(hits) == {"acme"}
    vec = acme.search([1.0, 1.0, 0.0], query_type="vector").limit(50).to_arrow()
    assert vec.num_rows == 20 and tenants_of(vec) == {"acme"}
    assert "vector" not in hits.column_names  # vectors withheld by default


@pytest.mark.parametrize("where", WIDENING)
def test_crafted_filters_cannot_widen_the_scope(db: hybrid.Database, where: str) -> None:
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    try:
        got = [
            acme.to_arrow(where=where),
            acme.search("refunds invoices").where(where).limit(100).to_arrow(),
            acme.search([1.0, 1.0, 0.0], query_type="vector").where(where).limit(100).to_arrow(),
            acme.search("note").where(where, prefilter=False).limit(100).to_arrow(),
        ]
        counted = acme.count_rows(where)
    except FilterError:
        return  # refused outright is fine too
    assert counted <= 20
    for table in got:
        assert tenants_of(table) <= {"acme"}


@pytest.mark.parametrize("where", SUBQUERIES)
def test_subqueries_and_statements_are_refused(db: hybrid.Database, where: str) -> None:
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    with pytest.raises(FilterError):
        acme.count_rows(where)
    with pytest.raises(FilterError):
        acme.search("note").where(where).to_arrow()
    with pytest.raises(FilterError):
        acme.delete(where)
    assert db.open_table("docs").count_rows() == 60


def test_the_caller_filter_is_one_child_of_the_conjunction() -> None:
    schema = pa.schema([("tenant", pa.string()), ("id", pa.int64())])
    combined = combine("tenant = 'acme'", "1=1) OR (1=1", schema)
    assert combined == "((tenant = 'acme') AND ((1 = 1) OR (1 = 1)))"
    with pytest.raises(FilterError):  # a trailing comment cannot swallow what follows the caller's text
        combine("tenant = 'acme'", "id > 3 --", schema)
    assert combine(None, "id > 3", schema) == "id > 3" and combine("tenant = 'a'", None, schema) == "tenant = 'a'"


def test_tables_outside_the_grant_look_missing(db: hybrid.Database) -> None:
    scoped = db.scoped(where="tenant = 'acme'", tables=["docs*"])
    assert scoped.table_names() == ["docs", "docs_archive"]
    assert "billing" not in scoped and "docs" in scoped
    with pytest.raises(TableNotFoundError) as hidden:
        scoped.open_table("billing")
    with pytest.raises(TableNotFoundError) as missing:
        scoped.open_table("nosuch")
    assert str(hidden.value).replace("billing", "X") == str(missing.value).replace("nosuch", "X")


def test_writes_outside_the_scope_are_refused_and_nothing_is_written(db: hybrid.Database) -> None:
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    table = db.open_table("docs")
    version = table.version
    batch = [{**r, "tenant": "acme"} for r in rows(5)]
    batch[3]["tenant"] = "globex"
    with pytest.raises(AccessError, match="1 of 5 rows .* outside the row scope"):
        acme.add(batch)
    with pytest.raises(AccessError, match="must carry its column"):
        acme.add([{"id": 99, "text": "no tenant", "vector": [0.0, 0.0, 1.0]}])
    nulls = [{**batch[0], "tenant": None}]
    with pytest.raises(AccessError):
        acme.add(nulls)
    assert table.checkout_latest().version == version and table.checkout_latest().count_rows() == 60
    acme.add([{**r, "tenant": "acme"} for r in rows(2)])
    assert db.open_table("docs").count_rows("tenant = 'acme'") == 22


def test_deletes_and_updates_stay_inside_the_scope(db: hybrid.Database) -> None:
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    assert acme.delete("1=1) OR (1=1").deleted == 20
    table = db.open_table("docs")
    assert table.count_rows() == 40 and table.count_rows("tenant = 'acme'") == 0
    globex = db.scoped(where="tenant = 'globex'").open_table("docs")
    assert globex.update("id < 10", {"text": "changed"}).updated == 3
    assert table.count_rows("text = 'changed'") == 3
    with pytest.raises(AccessError, match="may not change"):
        globex.update(None, {"tenant": "acme"})
    with pytest.raises(AccessError, match="may not change"):
        globex.update(None, values_sql={"tenant": "'acme'"})
    assert table.count_rows("tenant = 'globex'") == 20


def test_take_like_and_expand_do_not_reach_outside(db: hybrid.Database) -> None:
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    assert acme.take([0, 3])["id"].to_pylist() == [0, 3]
    with pytest.raises(RowNotFoundError) as outside:
        acme.take([1])  # globex's
    with pytest.raises(RowNotFoundError) as missing:
        acme.take([10_000])
    assert "not live rows" in str(outside.value) and "not live rows" in str(missing.value)
    with pytest.raises(RowNotFoundError):
        acme.search().like([1]).to_arrow()
    assert tenants_of(acme.search().like([0]).limit(50).to_arrow()) == {"acme"}
    with pytest.raises(AccessError, match="expand"):
        acme.search("note").expand(neighbours=1)


def test_vectors_are_withheld_unless_granted(db: hybrid.Database) -> None:
    hidden = db.scoped(where="tenant = 'acme'").open_table("docs")
    assert "vector" not in hidden.to_arrow().column_names
    for attempt in (
        lambda: hidden.to_arrow(columns=["id", "vector"]),
        lambda: hidden.take([0], columns=["vector"]),
        lambda: hidden.search("note").select(["vector"]),
        lambda: hidden.search("note").where("vector[1] > 0"),
        lambda: hidden.count_rows("vector[1] > 3"),
    ):
        with pytest.raises(AccessError, match="raw vectors"):
            attempt()
    shown = db.scoped(where="tenant = 'acme'", vectors=True).open_table("docs")
    assert shown.to_arrow()["vector"].type.list_size == 3


def test_read_only_scopes_refuse_writes_and_row_scopes_withhold_table_wide_counts(db: hybrid.Database) -> None:
    ro = db.scoped(tables="docs", read_only=True).open_table("docs")
    for write in (lambda: ro.add(rows(1)), lambda: ro.delete("true"), lambda: ro.update(None, {"text": "x"})):
        with pytest.raises(AccessError, match="read-only"):
            write()
    assert ro.index_stats() and ro.versions()  # no row scope: table-wide statistics are fine
    acme = db.scoped(where="tenant = 'acme'").open_table("docs")
    with pytest.raises(AccessError):
        acme.index_stats()
    with pytest.raises(AccessError):
        acme.versions()


def test_a_scope_that_does_not_fit_the_table_fails_when_opened(db: hybrid.Database) -> None:
    with pytest.raises(FilterError, match="unknown column"):
        db.scoped(where="customer = 'acme'").open_table("docs")
