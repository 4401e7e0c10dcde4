"""Database: create modes, drop, names, and SQL over every table."""

from __future__ import annotations

import pyarrow as pa
import pytest

import hybrid
from tests.conftest import make_rows


def test_create_modes(db: hybrid.Database) -> None:
    t = db.create_table("t", make_rows(range(3)))
    same = db.create_table("t", make_rows(range(9)), mode="exist_ok")
    assert same.count_rows() == 3
    over = db.create_table("t", [{"id": 7, "x": "new schema"}], mode="overwrite")
    assert over.schema.names == ["id", "x"] and over.count_rows() == 1
    assert over.version == 2 and t.checkout(1).count_rows() == 3  # history kept
    assert over.to_arrow(with_rowid=True).column("_rowid").to_pylist() == [3]  # ids never reused
    with pytest.raises(ValueError, match="mode"):
        db.create_table("t", make_rows([1]), mode="replace")  # type: ignore[arg-type]


def test_exist_ok_with_different_schema(db: hybrid.Database) -> None:
    db.create_table("t", schema=pa.schema([("a", pa.int64())]))
    with pytest.raises(hybrid.SchemaError, match="different schema"):
        db.create_table("t", schema=pa.schema([("b", pa.int64())]), mode="exist_ok")


def test_sql_sees_every_table_by_name(db: hybrid.Database) -> None:
    db.create_table("docs", make_rows(range(10)))
    db.create_table("langs", [{"lang": "en", "name": "English"}, {"lang": "de", "name": "German"}])
    out = db.sql("select l.name, count(*) as n from docs d join langs l using (lang) group by 1 order by 1")
    assert out.to_pylist() == [{"name": "English", "n": 5}, {"name": "German", "n": 5}]
    db.open_table("docs").delete("id < 4")
    assert db.sql("select count(*) as n from docs").to_pylist() == [{"n": 6}]


def test_drop_table(db: hybrid.Database) -> None:
    db.create_table("t", make_rows([1]))
    assert "t" in db
    db.drop_table("t")
    assert db.table_names() == [] and "t" not in db
    with pytest.raises(hybrid.TableNotFoundError):
        db.drop_table("t")
    db.drop_table("t", missing_ok=True)


def test_drop_table_drops_what_the_engine_keeps_beside_it(db: hybrid.Database) -> None:
    """Feedback (queries may name people), ingest parents and tune runs go with their table; a table
    whose name merely starts the same stays."""
    t = db.create_table("t", make_rows(range(3)))
    t.add_feedback("who wrote row one?", {"id": 1}, 1)
    db.create_table("t__parents", [{"source": "a.md", "text": "whole"}])
    (db.path / "t__tuned" / "run-1").mkdir(parents=True)
    db.create_table("t2", make_rows([1]))
    assert {"t", "t__feedback", "t__parents", "t2"} <= set(db.table_names())
    db.drop_table("t")
    assert db.table_names() == ["t2"]
    assert sorted(p.name for p in db.path.iterdir() if not p.name.startswith(".")) == ["t2"]


def test_open_table_follows_other_writers(db: hybrid.Database) -> None:
    a = db.create_table("t", make_rows(range(3)))
    b = db.open_table("t")
    a.add(make_rows([3]))
    assert b.count_rows() == 4 and b.version == 2


def test_public_api_names() -> None:
    for name in hybrid.__all__:
        assert hasattr(hybrid, name), name
    assert hybrid.connect.__doc__


def test_overwrite_binds_the_new_embedder_and_drops_the_old_binding(tmp_path) -> None:
    from hybrid.embedders import HashingEmbedder

    db = hybrid.connect(tmp_path)
    db.create_table("t", [{"id": 1, "text": "old"}], embedding={"v": ("text", HashingEmbedder(dim=8))})
    over = db.create_table(
        "t", [{"id": 2, "body": "new text"}], mode="overwrite", embedding={"w": ("body", HashingEmbedder(dim=16))}
    )
    assert set(over.embeddings) == {"w"} and over.embeddings["w"][1].dim == 16
    assert over.search("new", query_type="vector").limit(1).to_list()[0]["id"] == 2
    plain = db.create_table("t", [{"id": 3, "body": "no binding"}], mode="overwrite")
    assert plain.embeddings == {}
    assert hybrid.connect(tmp_path).open_table("t").checkout(2).embeddings.keys() == {"w"}
