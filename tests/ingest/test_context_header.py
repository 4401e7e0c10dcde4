"""Contextual chunk headers: a later chunk of a document is found by its document's title, while the
stored text, highlights and offsets stay the chunk's own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.ingest import Chunker, Document, Section, ingest
from hybrid.ingest.chunking import context_header

EMBEDDER = HashingEmbedder(dim=256)
BODY = " ".join(f"Step {i} moves the crate along conveyor belt number {i}." for i in range(40))


@pytest.fixture
def files(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    root.mkdir()
    (root / "handbook.md").write_text(f"---\ntitle: Zebra migration handbook\n---\n\n## Procedure\n\n{BODY}\n")
    (root / "other.md").write_text("# Garden notes\n\nTomatoes want sun and water every morning.\n")
    return root


def _ingest(db: hybrid.Database, files: Path, context: bool) -> hybrid.Table:
    ingest(db, "docs", [files], embedder=EMBEDDER, chunker=Chunker(size=200, overlap=20, context=context))
    return db.open_table("docs")


def _last_chunk(table: hybrid.Table) -> dict:
    rows = [
        r for r in table.to_arrow(["source", "chunk", "text", "heading"]).to_pylist() if r["source"] == "handbook.md"
    ]
    assert len(rows) > 3
    return max(rows, key=lambda r: r["chunk"])


def test_header_is_title_then_heading_path() -> None:
    d = Document(
        "a.md", Path("a.md"), "markdown", "Guide", (Section(("Guide", "Setup"), ("x.",)), Section((), ("y.",)))
    )
    first, second = Chunker(size=50, overlap=0).chunks(d)
    assert (first.context, second.context) == ("Guide > Setup", "Guide")
    assert first.text == "x." and first.embedding_text == "Guide > Setup\n\nx."
    assert Chunker(size=50, overlap=0, context=False).chunks(d)[0].embedding_text == "x."
    assert context_header("Manual", "Install > Linux") == "Manual > Install > Linux"
    with pytest.raises(ValueError, match="context"):
        Chunker(context="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("context", [True, False])
def test_a_later_chunk_is_found_by_its_documents_title(db: hybrid.Database, files: Path, context: bool) -> None:
    table = _ingest(db, files, context)
    last = _last_chunk(table)
    assert "zebra" not in (last["text"] + last["heading"]).lower()
    # full text: the title is indexed with every chunk (BM25F over title, heading and text)
    hits = table.search("zebra handbook", query_type="fts").limit(100).to_list()
    assert {(h["source"], h["chunk"]) for h in hits} >= {("handbook.md", last["chunk"])}
    # vectors: only a chunk embedded under its header carries the title's words
    q = EMBEDDER.embed_query("zebra migration handbook")
    vectors = {
        (r["source"], r["chunk"]): np.asarray(r["vector"])
        for r in table.to_arrow(["source", "chunk", "vector"]).to_pylist()
    }
    title_score = float(vectors[("handbook.md", last["chunk"])] @ q)
    other_score = float(vectors[("other.md", 0)] @ q)
    if context:
        assert title_score > other_score + 0.2
    else:
        assert title_score == pytest.approx(other_score, abs=0.1)


def test_stored_text_and_highlights_stay_the_chunks_own(db: hybrid.Database, files: Path) -> None:
    table = _ingest(db, files, True)
    last = _last_chunk(table)
    assert last["text"] in BODY  # no header in the stored text
    hit = (
        table.search("conveyor belt", query_type="fts")
        .where(f"source = 'handbook.md' AND chunk = {int(_last_chunk(table)['chunk'])}")
        .highlight()
        .to_list()[0]
    )
    spans = hit["_highlight_spans"]
    assert spans and all(hit["text"][s["start"] : s["end"]].lower() in ("conveyor", "belt") for s in spans)
    # the parent text is the source file's, not chunks with headers
    parents = db.open_table("docs__parents").to_arrow(["source", "text"]).to_pylist()
    assert next(p["text"] for p in parents if p["source"] == "handbook.md").count("Zebra") == 1
