"""A flat (ungrouped) search never returns title rows, and still fills its limit with passages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.query import passages

DIM = 8
DOCS = 40
QUERY = np.ones(DIM, np.float32)


def rows(start: int = 0, docs: int = DOCS) -> list[dict[str, Any]]:
    """Per document a title row nearer the query (vector and words) than any passage, then three passages."""
    rng = np.random.default_rng(start)
    out: list[dict[str, Any]] = []
    for d in range(start, start + docs):
        title = QUERY + rng.normal(0, 0.01, DIM)
        out.append({"doc_id": f"d{d}", "chunk_no": 0, "is_title": True, "text": "rotate signing keys", "v": title})
        for n in range(1, 4):
            words = "the keys are renewed" if n == 1 else f"cabinet {d} room {n}"
            vec = rng.normal(0, 1, DIM)
            out.append({"doc_id": f"d{d}", "chunk_no": n, "is_title": False, "text": words, "v": vec})
    for r in out:
        r["v"] = np.asarray(r["v"], np.float32).tolist()
    return out


def schema() -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("chunk_no", pa.int64()),
            ("is_title", pa.bool_()),
            ("text", pa.string()),
            ("v", pa.list_(pa.float32(), DIM)),
        ]
    )


def make(tmp_path: Path, indexed: bool = True) -> hybrid.Table:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    t = db.create_table("chunks", pa.Table.from_pylist(rows(), schema=schema()))
    t.create_fts_index("text")
    if indexed:
        t.create_vector_index("v", metric="l2", m=8, ef_construction=40)
    t.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title")
    return t


def unmarked(t: hybrid.Table) -> None:
    t.set_chunking(parent="doc_id", position="chunk_no")


def search(t: hybrid.Table, query_type: str) -> Any:
    if query_type == "vector":
        return t.search(QUERY.tolist())
    if query_type == "fts":
        return t.search("rotate keys", query_type="fts")
    return t.search("rotate keys", query_type="hybrid").vector(QUERY.tolist())


@pytest.mark.parametrize("indexed", [True, False])
@pytest.mark.parametrize("query_type", ["vector", "fts", "hybrid"])
def test_flat_search_returns_passages_only_and_fills_its_limit(tmp_path: Path, query_type: str, indexed: bool) -> None:
    t = make(tmp_path, indexed)
    hits = search(t, query_type).limit(10).to_list()
    assert len(hits) == 10 and not any(h["is_title"] for h in hits)
    every = search(t, query_type).limit(DOCS * 3 + 5).to_list()  # more than the table's passages
    assert len(every) == DOCS * 3 if query_type == "vector" else len(every) == len({h["_rowid"] for h in every})
    assert not any(h["is_title"] for h in every)


@pytest.mark.parametrize("query_type", ["vector", "fts"])
def test_the_passages_keep_the_order_the_unmarked_table_gives_them(tmp_path: Path, query_type: str) -> None:
    t = make(tmp_path)
    marked = [h["_rowid"] for h in search(t, query_type).limit(15).to_list()]
    unmarked(t)
    before = search(t, query_type).limit(500).to_list()
    assert before[0]["is_title"]  # unmarked, the titles come first: what the mark must hide
    assert marked == [h["_rowid"] for h in before if not h["is_title"]][:15]


def test_pages_with_an_offset_are_the_passages_in_order(tmp_path: Path) -> None:
    t = make(tmp_path)
    whole = [h["_rowid"] for h in search(t, "vector").limit(30).to_list()]
    pages = [h["_rowid"] for p in range(3) for h in search(t, "vector").offset(10 * p).limit(10).to_list()]
    assert pages == whole and len(set(pages)) == 30
    titles = set(t.to_arrow(["is_title"], where="is_title", with_rowid=True).column("_rowid").to_pylist())
    assert len(titles) == DOCS and not set(pages) & titles


@pytest.mark.parametrize("prefilter", [True, False])
@pytest.mark.parametrize("query_type", ["vector", "fts", "hybrid"])
def test_a_filter_and_the_title_rows_both_apply(tmp_path: Path, query_type: str, prefilter: bool) -> None:
    t = make(tmp_path)
    hits = search(t, query_type).where("chunk_no <= 2", prefilter=prefilter).limit(10).to_list()
    assert len(hits) == 10 and all(h["chunk_no"] in (1, 2) for h in hits)


def test_deleted_and_unindexed_rows_are_searched_as_passages(tmp_path: Path) -> None:
    t = make(tmp_path)
    t.add(pa.Table.from_pylist(rows(DOCS, 5), schema=schema()))  # not in the vector index yet
    t.delete("doc_id = 'd0'")
    hits = search(t, "vector").limit(DOCS * 4).to_list()
    assert len(hits) == (DOCS - 1 + 5) * 3 and not any(h["is_title"] for h in hits)
    assert "d0" not in {h["doc_id"] for h in hits} and "d44" in {h["doc_id"] for h in hits}


def test_explain_says_the_branches_search_the_passages(tmp_path: Path) -> None:
    t = make(tmp_path)
    plan = search(t, "hybrid").limit(5).explain()
    assert f"title rows: {DOCS} of the live rows, never returned" in plan
    assert "counted in their groups' scores" in search(t, "hybrid").group_by().limit(5).explain()


def test_a_table_without_the_mark_searches_as_before(tmp_path: Path) -> None:
    t = make(tmp_path)
    unmarked(t)
    view = t.indexed_snapshot()
    assert passages.gate(view, None) is None
    assert "title rows" not in search(t, "hybrid").limit(5).explain()
    assert search(t, "vector").limit(1).to_list()[0]["is_title"]
