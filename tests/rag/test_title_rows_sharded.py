"""A shard of a table with title rows answers as the table does: its branches never return a title row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid

pytest.importorskip("ray")

from hybrid.ray import global_bm25 as g  # noqa: E402
from hybrid.ray.shard_server import ShardServer, build_shard  # noqa: E402
from hybrid.ray.shards import _index_specs  # noqa: E402

DIM = 8
QUERY = np.ones(DIM, np.float32)
TEXT = "rotate signing keys"


def make(tmp_path: Path) -> hybrid.Table:
    """Per document a title row nearer the query (vector and words) than any passage, then three passages."""
    rng = np.random.default_rng(0)
    rows = []
    for d in range(30):
        title = QUERY + rng.normal(0, 0.01, DIM)
        rows.append({"doc_id": f"d{d}", "chunk_no": 0, "is_title": True, "text": TEXT, "v": title})
        for n in range(1, 4):
            words = "the keys are renewed" if n == 1 else f"cabinet {d} room {n}"
            rows.append(
                {"doc_id": f"d{d}", "chunk_no": n, "is_title": False, "text": words, "v": rng.normal(0, 1, DIM)}
            )
    for r in rows:
        r["v"] = np.asarray(r["v"], np.float32).tolist()
    schema = pa.schema(
        [("doc_id", pa.string()), ("chunk_no", pa.int64()), ("is_title", pa.bool_()), ("text", pa.string())]
        + [("v", pa.list_(pa.float32(), DIM))]
    )
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("chunks", pa.Table.from_pylist(rows, schema=schema))
    t.create_fts_index("text")
    t.create_vector_index("v", metric="l2", m=8, ef_construction=40)
    t.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title")
    return t


def test_a_shard_never_returns_title_rows(tmp_path: Path) -> None:
    t = make(tmp_path)
    titles = set(t.to_arrow(["is_title"], where="is_title", with_rowid=True)["_rowid"].to_pylist())
    flat_vector = t.search(QUERY, query_type="vector").limit(10).to_arrow()["_rowid"].to_pylist()
    flat_text = t.search(TEXT, query_type="fts").limit(10).to_arrow()["_rowid"].to_pylist()
    assert len(titles) == 30 and not titles & {*flat_vector, *flat_text}  # the unsharded table's answers

    root = tmp_path / "shards" / "shard-0000"
    root.parent.mkdir()
    build_shard(str(t.path), t.version, 0, 10**9, str(root), _index_specs(t))
    server = ShardServer(str(root))
    ids, _ = server.vector_search("v", QUERY, 10, None, None)
    assert len(ids) == 10 and not titles & set(ids.tolist())
    assert ids.tolist() == flat_vector
    name = next(s["name"] for s in _index_specs(t) if s["kind"] == "fts")
    stats = g.GlobalStats.merge([server.text_stats(name, TEXT, None)])
    ids, _, _ = server.text_search(name, TEXT, None, 10, None, stats)
    assert len(ids) == 10 and not titles & set(ids.tolist())
    ids, _, _ = server.text_search(name, TEXT, None, 10, "doc_id = 'd3'", stats)
    flat = t.search(TEXT, query_type="fts").where("doc_id = 'd3'").limit(10).to_arrow()["_rowid"].to_pylist()
    assert ids.tolist() == flat and len(flat) == 1  # the filter's one passage with a query word, not its title
