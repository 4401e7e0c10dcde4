"""The chunked evaluation mode (`hybrid eval --chunk N`): documents cut into chunks, runs scored per document."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from hybrid.eval.chunked import chunk_rows
from hybrid.eval.collection import from_objects
from hybrid.eval.pipeline import EvalSettings, run_evaluation
from hybrid.ingest.chunking import count_tokens
from tests.eval.test_cli import hybrid_cli, make_collection

TOPICS = ["cats purr softly", "volcanoes erupt lava", "yeast makes bread rise", "glaciers carve valleys"]


def long_collection() -> object:
    """Documents of several ~20-token sentences each, one topic sentence hidden in the middle."""
    filler = "This sentence talks about nothing in particular and fills some space here. "
    corpus = {
        f"d{i}": {"title": f"Doc {i}", "text": filler * 4 + f"{t.capitalize()}. " + filler * 4}
        for i, t in enumerate(TOPICS)
    }
    queries = {f"q{i}": t for i, t in enumerate(TOPICS)}
    return from_objects(corpus, queries, {f"q{i}": {f"d{i}": 1} for i in range(len(TOPICS))}, name="long")


def test_chunks_carry_their_document_and_number_and_stay_near_the_size() -> None:
    coll = long_collection()
    rows = chunk_rows(coll, 32)  # type: ignore[arg-type]
    by_doc: dict[str, list[int]] = {}
    for r in rows:
        by_doc.setdefault(r["doc_id"], []).append(r["chunk_no"])
        assert r["content"].startswith(r["title"] + ". ")
        assert count_tokens(r["content"].removeprefix(r["title"] + ". ")) <= 32
    assert set(by_doc) == {"d0", "d1", "d2", "d3"}
    assert all(ns == list(range(len(ns))) and len(ns) > 3 for ns in by_doc.values())
    with pytest.raises(ValueError, match="at least 16 tokens"):
        chunk_rows(coll, 8)  # type: ignore[arg-type]


def test_chunks_without_titles_hold_the_chunk_text_alone() -> None:
    coll = long_collection()
    titled, bare = chunk_rows(coll, 32), chunk_rows(coll, 32, title=False)  # type: ignore[arg-type]
    assert [(r["doc_id"], r["chunk_no"], r["title"]) for r in titled] == [
        (r["doc_id"], r["chunk_no"], r["title"]) for r in bare
    ]
    assert all(t["content"] == f"{b['title']}. {b['content']}" for t, b in zip(titled, bare))
    assert not any(b["content"].startswith("Doc ") for b in bare)


def test_grouped_runs_list_each_document_once_and_flat_runs_count_it_once(tmp_path: Path) -> None:
    settings = EvalSettings(runs=["bm25", "hybrid"], embedder="hashing", embedder_config={"dim": 64}, chunk=32, k=3)
    report, _ = run_evaluation(long_collection(), tmp_path / "out", settings)  # type: ignore[arg-type]
    names = [e.name for e in report.entries]
    assert names == [
        "bm25",
        "hybrid",
        *("bm25@chunks", "bm25@chunks-len", "bm25@chunks-best", "bm25@chunks-flat"),
        *("hybrid@chunks", "hybrid@chunks-len", "hybrid@chunks-best", "hybrid@chunks-flat", "hybrid@chunks-groups"),
    ]
    for e in report.entries:
        assert e.mean["nDCG@10"] == pytest.approx(1.0), e.name  # the topic sentence finds its document
    runs = json.loads((tmp_path / "out" / "report.json").read_text())
    assert runs["meta"]["chunk_tokens"] == 32 and runs["meta"]["chunks"] > 16


def test_the_command_line_takes_chunk(tmp_path: Path) -> None:
    coll = make_collection(tmp_path / "tiny")
    cmd = [*hybrid_cli(), "eval", str(coll), "--runs", "bm25", "--chunk", "16", "--out", str(tmp_path / "r")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bm25@chunks" in (tmp_path / "r" / "report.md").read_text()


def test_title_layouts_place_the_title_where_they_say() -> None:
    coll = long_collection()
    bare = chunk_rows(coll, 32, titles="none")  # type: ignore[arg-type]
    dense = chunk_rows(coll, 32, titles="dense")  # type: ignore[arg-type]
    once = chunk_rows(coll, 32, titles="once")  # type: ignore[arg-type]
    # "dense": the indexed text is the chunk alone, the embedded text has the title before it
    assert [r["content"] for r in dense] == [r["content"] for r in bare]
    assert all(r["dense_text"] == f"{r['title']}. {r['content']}" for r in dense)
    # "once": one title chunk (number 0) per titled document, the text chunks after it without the title
    for doc in ("d0", "d1", "d2", "d3"):
        mine = [r for r in once if r["doc_id"] == doc]
        assert mine[0]["chunk_no"] == 0 and mine[0]["content"] == mine[0]["title"]
        assert [r["content"] for r in mine[1:]] == [r["content"] for r in bare if r["doc_id"] == doc]
        assert [r["chunk_no"] for r in mine] == list(range(len(mine)))
    with pytest.raises(ValueError, match="titles must be one of"):
        chunk_rows(coll, 32, titles="twice")  # type: ignore[arg-type]


def test_dense_title_layout_embeds_the_title_but_indexes_the_chunk(tmp_path: Path) -> None:
    from hybrid import connect
    from hybrid.embedders.hashing import HashingEmbedder
    from hybrid.eval.chunked import build_chunk_table

    coll = long_collection()
    db = connect(tmp_path / "db")
    e = HashingEmbedder(dim=64)
    table = build_chunk_table(db, coll, 32, embedders={"vector": e}, titles="dense")  # type: ignore[arg-type]
    assert table.embeddings["vector"][0] == "dense_text"
    assert table.search("Doc", query_type="fts").limit(5).to_list() == []  # the title is not in the index
    row = table.to_arrow().slice(0, 1).to_pylist()[0]
    assert row["vector"] == pytest.approx(e.embed_documents([row["dense_text"]])[0].tolist(), abs=1e-6)


def test_the_once_layout_marks_its_title_rows_and_the_command_line_takes_it(tmp_path: Path) -> None:
    from hybrid import connect
    from hybrid.eval.chunked import build_chunk_table

    coll = long_collection()
    once = chunk_rows(coll, 32, titles="once")  # type: ignore[arg-type]
    assert [r["is_title"] for r in once] == [r["chunk_no"] == 0 for r in once]
    table = build_chunk_table(connect(tmp_path / "db"), coll, 32, titles="once")  # type: ignore[arg-type]
    assert table.chunking is not None and table.chunking.title_row == "is_title"
    hits = table.search("Doc 2", query_type="fts").group_by().limit(4).to_list()
    assert hits and not any(h["is_title"] for h in hits)  # the titles match, their passages come back
    settings = EvalSettings(runs=["bm25"], chunk=32, k=3, chunk_titles="once")
    report, _ = run_evaluation(long_collection(), tmp_path / "out", settings)  # type: ignore[arg-type]
    assert all(e.mean["nDCG@10"] == pytest.approx(1.0) for e in report.entries)
    assert json.loads((tmp_path / "out" / "report.json").read_text())["meta"]["chunk_titles"] == "once"
    with pytest.raises(ValueError, match="chunk_titles must be one of"):
        run_evaluation(long_collection(), tmp_path / "bad", EvalSettings(runs=["bm25"], chunk=32, chunk_titles="x"))  # type: ignore[arg-type]
    coll_dir = make_collection(tmp_path / "tiny")
    cmd = [*hybrid_cli(), "eval", str(coll_dir), "--runs", "bm25", "--chunk", "16", "--chunk-titles", "once"]
    done = subprocess.run([*cmd, "--out", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "r" / "report.json").read_text())["meta"]["chunk_titles"] == "once"
