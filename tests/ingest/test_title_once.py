"""`hybrid ingest --titles once`: each document's title as a marked title row instead of with every chunk."""

from __future__ import annotations

from pathlib import Path

import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.ingest import Chunker, Document, Section, ingest
from hybrid.ingest.chunking import TITLE_CHUNK

EMBEDDER = HashingEmbedder(dim=256)
BODY = " ".join(f"Step {i} moves the crate along conveyor belt number {i}." for i in range(40))
ONCE = Chunker(size=200, overlap=20, titles="once")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "handbook.md").write_text(f"# Zebra migration handbook\n\n## Procedure\n\n{BODY}\n")
    (root / "other.md").write_text("# Garden notes\n\nTomatoes want sun and water every morning.\n")
    return root


def test_the_chunker_puts_the_title_in_a_row_of_its_own() -> None:
    sections = (Section(("Guide", "Setup"), ("x.",)), Section((), ("y.",)))
    d = Document("a.md", Path("a.md"), "markdown", "Guide", sections)
    title, first, second = ONCE.chunks(d)
    assert (title.is_title, title.chunk, title.text, title.heading) == (True, TITLE_CHUNK, "Guide", "")
    assert (first.is_title, first.chunk, first.heading, first.context) == (False, 0, "Setup", "Setup")
    assert (second.heading, second.context, second.embedding_text) == ("", "", "y.")
    assert [c.chunk for c in Chunker(size=200, overlap=20).chunks(d)] == [0, 1]  # "every": no title row
    untitled = Document("b.md", Path("b.md"), "markdown", " ", (Section((), ("z.",)),))
    assert [c.is_title for c in ONCE.chunks(untitled)] == [False]
    with pytest.raises(ValueError, match="titles must be 'every' or 'once'"):
        Chunker(titles="twice")  # type: ignore[arg-type]


def test_ingest_writes_one_marked_title_row_per_document(tmp_path: Path, files: Path) -> None:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    report = ingest(db, "docs", [files], embedder=EMBEDDER, chunker=ONCE)
    table = db.open_table("docs")
    assert table.chunking is not None and table.chunking.title_row == "is_title"
    rows = table.to_arrow(["source", "chunk", "text", "heading", "is_title"]).to_pylist()
    titles = sorted((r["source"], r["text"]) for r in rows if r["is_title"])
    assert titles == [("handbook.md", "Zebra migration handbook"), ("other.md", "Garden notes")]
    assert all(r["chunk"] == TITLE_CHUNK for r in rows if r["is_title"])
    passages = [r for r in rows if not r["is_title"]]
    assert len(passages) > 3 and all("Zebra" not in r["text"] + r["heading"] for r in passages)
    assert report.chunks == len(rows)
    fts = [s for s in table.index_stats() if s["kind"] == "fts"]
    assert fts and "title" not in fts[0]["columns"]
    again = ingest(db, "docs", [files], embedder=EMBEDDER, chunker=ONCE)
    assert (again.added, again.removed, again.unchanged_files) == (0, 0, 2)


def test_a_grouped_search_counts_the_title_but_returns_passages(tmp_path: Path, files: Path) -> None:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    ingest(db, "docs", [files], embedder=EMBEDDER, chunker=ONCE)
    table = db.open_table("docs")
    flat = table.search("zebra migration handbook", query_type="fts").limit(5).to_list()
    assert flat == []  # only the title row names the zebra, and a flat search returns passages only
    for query_type in ("fts", "hybrid"):
        hits = table.search("zebra migration handbook", query_type=query_type).group_by(score="max_mean")
        found = hits.limit(2).to_list()
        assert found and not any(h["is_title"] for h in found)
        assert found[0]["source"] == "handbook.md"
    fts = table.search("zebra migration handbook", query_type="fts").group_by().limit(2).to_list()
    assert [(h["source"], h["chunk"]) for h in fts] == [("handbook.md", 0)]  # its first passage stands in
    whole = table.search("conveyor belt", query_type="fts").group_by().expand(parent=True).limit(1).to_list()
    assert whole[0]["_context"].startswith("# Zebra migration handbook")  # the parent table keeps the file


def test_a_tables_title_layout_is_fixed_when_it_is_made(tmp_path: Path, files: Path) -> None:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    ingest(db, "once", [files], embedder=EMBEDDER, chunker=ONCE)
    ingest(db, "every", [files], embedder=EMBEDDER, chunker=Chunker(size=200, overlap=20))
    with pytest.raises(SchemaError, match="was ingested with titles='once'"):
        ingest(db, "once", [files], embedder=EMBEDDER, chunker=Chunker(size=200, overlap=20))
    with pytest.raises(SchemaError, match="was ingested with titles='every'"):
        ingest(db, "every", [files], embedder=EMBEDDER, chunker=ONCE)
    assert db.open_table("every").chunking.title_row is None  # type: ignore[union-attr]
