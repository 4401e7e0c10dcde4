"""Tables with an embedder bound to a vector column: writes fill vectors, text queries are embedded,
the binding survives reopening, follows schema changes, and bad text loses no data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import EmbeddingError, SchemaError

E = HashingEmbedder(dim=32)
TEXTS = ["the cat sat on the mat", "stock markets fell today", "a kitten sleeps on a rug", "bond yields rose"]


def vectors_of(t: hybrid.Table, column: str = "vector") -> dict[int, list[float] | None]:
    rows = t.to_arrow(columns=["id", column]).to_pylist()
    return {r["id"]: r[column] for r in rows}


@pytest.fixture
def bound(db: hybrid.Database) -> hybrid.Table:
    rows = [{"id": i, "text": s} for i, s in enumerate(TEXTS)]
    return db.create_table("docs", rows, embedding={"vector": ("text", E)})


def test_create_fills_vectors_with_the_embedder(bound: hybrid.Table) -> None:
    assert bound.schema.field("vector").type == pa.list_(pa.float32(), 32)
    got = np.array([vectors_of(bound)[i] for i in range(4)], dtype=np.float32)
    np.testing.assert_allclose(got, E.embed_documents(TEXTS), rtol=1e-6)
    assert bound.embeddings["vector"][0] == "text"


def test_writes_fill_vectors_and_keep_given_ones(bound: hybrid.Table) -> None:
    own = [0.5] * 32
    bound.add([{"id": 10, "text": "fresh text"}, {"id": 11, "text": "has own", "vector": own}, {"id": 12}])
    v = vectors_of(bound)
    np.testing.assert_allclose(v[10], E.embed_query("fresh text") * 0 + E.embed_documents(["fresh text"])[0])
    assert v[11] == own
    assert v[12] is None  # no text, no vector


def test_update_of_the_text_re_embeds_and_other_updates_keep_vectors(bound: hybrid.Table) -> None:
    before = vectors_of(bound)
    bound.update("id = 1", {"text": "a puppy on the sofa"})
    bound.update("id = 2", values_sql={"id": "id + 100"})
    after = vectors_of(bound)
    np.testing.assert_allclose(after[1], E.embed_documents(["a puppy on the sofa"])[0], rtol=1e-6)
    assert after[102] == before[2]


def test_merge_insert_embeds_inserted_and_updated_rows(bound: hybrid.Table) -> None:
    bound.merge_insert([{"id": 0, "text": "interest rates"}, {"id": 7, "text": "new row"}], on="id")
    v = vectors_of(bound)
    np.testing.assert_allclose(v[0], E.embed_documents(["interest rates"])[0], rtol=1e-6)
    np.testing.assert_allclose(v[7], E.embed_documents(["new row"])[0], rtol=1e-6)


def test_empty_text_is_refused_and_nothing_changes(bound: hybrid.Table) -> None:
    version, rows = bound.version, bound.to_arrow()
    files = sorted(p.name for p in bound.path.rglob("*"))
    with pytest.raises(EmbeddingError, match="'text': row 1 is empty"):
        bound.add([{"id": 20, "text": "fine"}, {"id": 21, "text": "   "}])
    with pytest.raises(EmbeddingError, match="empty"):
        bound.update("id = 0", {"text": ""})
    with pytest.raises(EmbeddingError, match="empty"):
        bound.merge_insert([{"id": 0, "text": ""}], on="id")
    assert bound.version == version and bound.to_arrow().equals(rows)
    assert sorted(p.name for p in bound.path.rglob("*")) == files


def test_text_query_is_embedded(bound: hybrid.Table) -> None:
    by_text = bound.search("kitten on a rug", query_type="vector").limit(4).to_arrow()
    by_vector = bound.search(E.embed_query("kitten on a rug")).limit(4).to_arrow()
    assert by_text["id"].to_pylist() == by_vector["id"].to_pylist()
    assert by_text["id"][0].as_py() == 2
    assert "_bm25" not in bound.search("kitten").to_arrow().column_names  # auto without an FTS index: vector only
    bound.create_fts_index("text")
    hybrid_rows = bound.search("kitten on a rug").to_arrow()  # auto with both: hybrid
    assert {"_bm25", "_distance"} <= set(hybrid_rows.column_names)
    assert "_distance" not in bound.search("kitten", query_type="fts").to_arrow().column_names
    assert "query embedded by hashing" in bound.search("kitten").explain()


def test_several_bindings_need_a_choice(db: hybrid.Database) -> None:
    small = HashingEmbedder(dim=8)
    t = db.create_table(
        "two", [{"id": 1, "a": "red apple", "b": "blue sky"}], embedding={"va": ("a", E), "vb": ("b", small)}
    )
    with pytest.raises(SchemaError, match="choose with vector_column"):
        t.search("apple", query_type="vector").to_list()
    assert t.search("apple", vector_column="vb", query_type="vector").to_list()[0]["id"] == 1
    with pytest.raises(SchemaError, match="no embedder bound"):
        t.search("apple", vector_column="nope", query_type="vector").to_list()


def test_binding_is_restored_in_a_new_process(bound: hybrid.Table, db: hybrid.Database) -> None:
    script = (
        "import sys, hybrid\n"
        "t = hybrid.connect(sys.argv[1]).open_table('docs')\n"
        "t.add([{'id': 9, 'text': 'a cat on a mat'}])\n"
        "print(t.search('cat on the mat', query_type='vector').limit(2).to_arrow()['id'].to_pylist())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(db.path)], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [0, 9] or json.loads(out.stdout) == [9, 0]
    v = vectors_of(hybrid.connect(db.path).open_table("docs"))
    np.testing.assert_allclose(v[9], E.embed_documents(["a cat on a mat"])[0], rtol=1e-6)


def test_add_columns_with_an_embedder_writes_only_the_new_vectors(bound: hybrid.Table) -> None:
    data_files = {p: p.read_bytes() for p in bound.path.rglob("*.arrow")}
    other = HashingEmbedder(dim=16)
    bound.add_columns({"v16": ("text", other)})
    for p, content in data_files.items():
        assert p.read_bytes() == content
    v = vectors_of(bound, "v16")
    np.testing.assert_allclose(np.array([v[i] for i in range(4)]), other.embed_documents(TEXTS), rtol=1e-6)
    assert set(bound.embeddings) == {"vector", "v16"}
    bound.add([{"id": 30, "text": "later row"}])
    assert vectors_of(bound, "v16")[30] is not None and vectors_of(bound)[30] is not None


def test_schema_changes_carry_the_binding(bound: hybrid.Table) -> None:
    bound.rename_column("text", "body")
    assert bound.embeddings["vector"][0] == "body"
    bound.add([{"id": 40, "body": "renamed source"}])
    np.testing.assert_allclose(vectors_of(bound)[40], E.embed_documents(["renamed source"])[0], rtol=1e-6)
    v_before = bound.version
    bound.drop_columns("vector")
    assert bound.embeddings == {}
    bound.restore(v_before)
    assert set(bound.embeddings) == {"vector"}


def test_bad_bindings_are_refused(db: hybrid.Database) -> None:
    with pytest.raises(SchemaError, match="must hold text"):
        db.create_table("a", [{"n": 1}], embedding={"vector": ("n", E)})
    with pytest.raises(SchemaError, match="'missing' is not in the table"):
        db.create_table("b", [{"text": "x"}], embedding={"vector": ("missing", E)})
    with pytest.raises(SchemaError, match="length 2, the table expects 32"):
        db.create_table("c", [{"text": "x", "vector": [1.0, 2.0]}], embedding={"vector": ("text", E)})
    with pytest.raises(TypeError, match="not an Embedder"):
        db.create_table("d", [{"text": "x"}], embedding={"vector": ("text", object())})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="pair"):
        db.create_table("e", [{"text": "x"}], embedding={"vector": "text"})  # type: ignore[dict-item]
    assert db.table_names() == []


def test_schema_only_create_gets_the_vector_column(db: hybrid.Database) -> None:
    schema = pa.schema([("id", pa.int64()), ("text", pa.string())])
    t = db.create_table("s", schema=schema, embedding={"vector": ("text", E)})
    assert t.schema.field("vector").type == pa.list_(pa.float32(), 32)
    t.add([{"id": 1, "text": "hello"}])
    assert vectors_of(t)[1] is not None


def test_unknown_embedder_in_metadata_is_named(bound: hybrid.Table, tmp_path: Path) -> None:
    from hybrid.embedders import binding

    fake = binding.Binding("vector", "text", "not-installed-model", "{}")
    with pytest.raises(Exception, match="not-installed-model.*not available"):
        _ = fake.embedder
