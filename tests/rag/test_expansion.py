"""Context expansion: `.expand(neighbours=n)` and `.expand(parent=True)` on real tables and ingested files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.ingest.chunking import Chunker
from hybrid.ingest.pipeline import ingest
from hybrid.query.expansion import join_chunks

# each chunk has one word of its own (u<doc><n>) so a query can hit exactly it
DOCS = {"a": 6, "b": 4}


def text_of(doc: str, n: int) -> str:
    return f"Chunk {n} of {doc} says u{doc}{n} plainly."


@pytest.fixture
def chunks(tmp_path: Path) -> hybrid.Table:
    rows = [{"doc": d, "n": n, "text": text_of(d, n)} for d, count in DOCS.items() for n in range(count)]
    rows.reverse()  # row order is not reading order: positions decide
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    t.set_chunking(parent="doc", position="n")
    return t


def rowid(t: hybrid.Table, doc: str, n: int) -> int:
    return int(t.to_arrow(["doc"], where=f"doc = '{doc}' AND n = {n}", with_rowid=True)["_rowid"][0].as_py())


def spans_text(hit: dict[str, Any]) -> list[str]:
    return [hit["_context"][s["start"] : s["end"]] for s in hit["_context_spans"]]


def test_neighbours_are_the_adjacent_chunks_of_the_same_document_in_order(chunks: hybrid.Table) -> None:
    hits = chunks.search("ua2").expand(neighbours=1).to_list()
    assert len(hits) == 1
    hit = hits[0]
    assert hit["_context_rowids"] == [rowid(chunks, "a", n) for n in (1, 2, 3)]
    assert hit["_context"] == "\n\n".join(text_of("a", n) for n in (1, 2, 3))
    assert spans_text(hit) == [text_of("a", 2)]
    wide = chunks.search("ua0").expand(neighbours=2).to_list()[0]  # at the start: only later ones
    assert wide["_context_rowids"] == [rowid(chunks, "a", n) for n in (0, 1, 2)]
    last = chunks.search("ub3").expand(neighbours=1).to_list()[0]  # never crosses into another document
    assert last["_context_rowids"] == [rowid(chunks, "b", n) for n in (2, 3)]


def test_a_deleted_neighbour_is_skipped(chunks: hybrid.Table) -> None:
    chunks.delete("doc = 'a' AND n = 3")
    hit = chunks.search("ua2").expand(neighbours=1).to_list()[0]
    assert hit["_context_rowids"] == [rowid(chunks, "a", n) for n in (1, 2, 4)]
    assert text_of("a", 3) not in hit["_context"]


def test_touching_passages_merge_into_the_better_hit(chunks: hybrid.Table) -> None:
    flat = chunks.search("ua2 ua3 ua3").to_list()
    hits = chunks.search("ua2 ua3 ua3").expand(neighbours=1).to_list()
    assert len(flat) == 2 and len(hits) == 1
    hit = hits[0]
    assert hit["_rowid"] == flat[0]["_rowid"]
    assert hit["_context_rowids"] == [rowid(chunks, "a", n) for n in (1, 2, 3, 4)]
    assert spans_text(hit) == [flat[0]["text"], flat[1]["text"]]  # this row's hit first
    apart = chunks.search("ua0 ua5").expand(neighbours=1).to_list()
    assert len(apart) == 2 and all(len(h["_context_rowids"]) == 2 for h in apart)


def test_parent_joins_the_live_chunks_once_per_document(chunks: hybrid.Table) -> None:
    hits = chunks.search("ua4 ua1 ub0").expand(parent=True).to_list()
    assert sorted(h["doc"] for h in hits) == ["a", "b"]
    a = next(h for h in hits if h["doc"] == "a")
    assert a["_context"] == join_chunks([text_of("a", n) for n in range(6)])[0]
    assert len(a["_context_spans"]) == 2 and sorted(spans_text(a)) == [text_of("a", 1), text_of("a", 4)]


def test_expansion_follows_grouping_and_filters(chunks: hybrid.Table) -> None:
    hits = chunks.search("ua1 ua4 ub2").where("doc = 'a'").group_by("doc").expand(neighbours=1).to_list()
    assert len(hits) == 1 and hits[0]["doc"] == "a" and len(hits[0]["_context_rowids"]) == 3


def test_parent_text_is_the_source_document_for_ingested_files(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    md = "# Install\n\nRun the installer.  It asks *twice*.\n\n## Keys\n\nRotate the keys every month.\n"
    txt = "Plain notes.\n\nThe backup runs nightly and\nkeeps thirty copies.\n"
    (files / "guide.md").write_text(md + "\n".join(f"\nStep {i} of the guide." for i in range(30)))
    (files / "notes.txt").write_text(txt)
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    ingest(db, "docs", [files], embedder=HashingEmbedder(dim=16), chunker=Chunker(size=120, overlap=30))
    t = db.open_table("docs")
    for query, name in (("rotate keys month", "guide.md"), ("backup nightly copies", "notes.txt")):
        hit = t.search(query, query_type="fts").expand(parent=True).limit(1).to_list()[0]
        assert hit["source"] == name
        assert hit["_context"] == (files / name).read_text()
        span = hit["_context_spans"][0]
        assert span is not None
        marked = hit["_context"][span["start"] : span["end"]]
        assert marked.split() == hit["text"].split()
    (files / "notes.txt").unlink()
    ingest(db, "docs", [files], prune=True)
    assert db.open_table("docs__parents").to_arrow(["source"])["source"].to_pylist() == ["guide.md"]


def test_bad_expansion_input_says_what_was_wrong(chunks: hybrid.Table, tmp_path: Path) -> None:
    q = chunks.search("ua1")
    with pytest.raises(ValueError, match="neighbours >= 1 or parent=True"):
        q.expand()
    with pytest.raises(ValueError, match="neighbours must be an integer >= 0"):
        q.expand(neighbours=-1)
    with pytest.raises(ValueError, match="not both"):
        q.expand(neighbours=1, parent=True)
    plain = hybrid.connect(tmp_path / "p", upkeep=None).create_table("p", [{"doc": "a", "text": "ua1"}])
    plain.create_fts_index("text")
    with pytest.raises(SchemaError, match="set_chunking"):
        plain.search("ua1").expand(neighbours=1).to_list()
    plain.set_chunking(parent="doc")  # no position: the order rows were added
    plain.add([{"doc": "a", "text": "ua2"}, {"doc": "b", "text": "ub1"}, {"doc": "a", "text": "ua3"}])
    assert plain.search("ua2").expand(neighbours=1).to_list()[0]["_context"] == "ua1\n\nua2\n\nua3"
    assert plain.search("ua1").expand(parent=True).to_list()[0]["_context"] == "ua1\n\nua2\n\nua3"


def test_a_plan_made_with_the_hits_gives_what_expand_works_out_alone(chunks: hybrid.Table) -> None:
    from hybrid.query import expansion

    rows = chunks.search("ua1 ua4 ub2").to_arrow()
    view = chunks.indexed_snapshot()
    how = expansion.Expansion(neighbours=1)
    planned = expansion.plan(view, how, rows.column("_rowid").to_numpy())
    ids = {rowid(chunks, d, n) for d, n in [("a", 0), ("a", 2), ("a", 3), ("a", 5), ("b", 1), ("b", 3)]}
    assert set(planned.neighbours().tolist()) == ids  # the chunks beside the hits, never the hits
    alone = expansion.expand(rows, view, how)
    assert expansion.expand(rows, view, how, planned).equals(alone)
    other = expansion.plan(view, how, rows.column("_rowid").to_numpy()[:1])  # another hit list: not used
    assert expansion.expand(rows, view, how, other).equals(alone)
    assert alone.schema.names[-3:] == ["_context", "_context_rowids", "_context_spans"]


@pytest.mark.parametrize("kept", [[0, 1, 2, 3], [1, 2], [0, 2], [3], [0, 1, 3], []])
def test_the_kept_rows_are_those_a_take_gives(kept: list[int]) -> None:
    """A run of kept rows is sliced, not taken: the same rows either way."""
    import pyarrow as pa

    from hybrid.query.expansion import _rows_at

    rows = pa.table({"_rowid": pa.array([7, 3, 9, 1], pa.uint64()), "text": ["a", "b", "c", "d"]})
    assert _rows_at(rows, kept).equals(rows.take(pa.array(kept, pa.int64())))


def _chunk_map(parents: list[int]) -> Any:
    """A chunk map of consecutive places, `parents[d]` chunks in document d."""
    from hybrid.query.expansion import ChunkMap

    starts = np.concatenate([np.full(n, sum(parents[:d])) for d, n in enumerate(parents)]).astype(np.int64)
    ends = np.concatenate([np.full(n, sum(parents[: d + 1])) for d, n in enumerate(parents)]).astype(np.int64)
    ids = np.arange(len(starts), dtype=np.uint64)
    return ChunkMap(ids, {}, starts, ends, np.arange(len(ids)), ids)


def test_a_hit_joins_the_best_passage_it_touches_and_never_merges_two() -> None:
    """Hits in rank order: 0 at place 0 and 1 at place 6 make passages; 2 at place 3 touches both and
    joins the better one's; 3 in another document stands alone."""
    from hybrid.query.expansion import _passages

    cmap = _chunk_map([10, 4])
    found = _passages(cmap, np.array([0, 6, 3, 11]), n=2)
    assert found == {0: ((0, 5), [0, 2]), 1: ((4, 8), [1]), 3: ((10, 13), [3])}
    # hits ranked above (an earlier page's) take theirs first: a hit joining one of theirs leaves
    later = _passages(cmap, np.array([3, 11]), n=2, above=np.array([0, 6]))
    assert later == {1: ((10, 13), [1])}


@pytest.mark.parametrize("parent", [False, True])
def test_pages_of_an_expanded_search_keep_what_one_longer_result_keeps(tmp_path: Path, parent: bool) -> None:
    """A page's hit whose passage (or document) an earlier page's hit shows leaves, as in one result."""
    rows = [
        {"doc": f"d{d}", "n": n, "text": f"w{(d * 7 + n) % 5} x{n % 3} u{d}{n}"} for d in range(12) for n in range(8)
    ]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    t.set_chunking(parent="doc", position="n")
    for text in ["w1 x2", "w3", "x0 w4 w2"]:
        q = t.search(text).expand(parent=True) if parent else t.search(text).expand(neighbours=1)
        ids = lambda x: x.select(["doc", "n"]).to_arrow().column("_rowid").to_pylist()  # noqa: E731
        whole = ids(q.limit(30))
        paged = [i for p in range(10) for i in ids(q.offset(3 * p).limit(3))]
        assert paged == whole and len(set(paged)) == len(paged)
        assert len(whole) < 30  # some hits joined a better one
