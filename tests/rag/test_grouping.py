"""Grouping search results by their document: `table.set_chunking` and `.group_by()` on real tables."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.query.fusion import DBSF, RRF, Linear, Ranked
from hybrid.query.group_fusion import fuse_groups
from hybrid.rerankers.callable import CallableReranker

WORDS = ["kernel", "memory", "page", "cache", "disk", "network", "socket", "thread", "lock", "queue"]


def chunk_rows(n_docs: int = 12, per_doc: int = 6) -> list[dict[str, Any]]:
    """Chunks whose text mixes a few words chosen by (doc, chunk), so scores differ and documents repeat words."""
    rows = []
    for d in range(n_docs):
        for c in range(per_doc):
            words = [WORDS[(d * 3 + c * k) % len(WORDS)] for k in range(1, 4 + (d + c) % 4)]
            rows.append({"doc_id": f"d{d}", "chunk_no": c, "lang": "en" if d % 2 else "de", "text": " ".join(words)})
    return rows


@pytest.fixture
def chunks(tmp_path: Path) -> hybrid.Table:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    t = db.create_table("chunks", chunk_rows(), embedding={"vector": ("text", HashingEmbedder(dim=32))})
    t.create_fts_index("text")
    t.set_chunking(parent="doc_id", position="chunk_no")
    return t


def by_hand(rows: list[dict[str, Any]], k: int, per_group: int) -> list[list[int]]:
    """The oracle: walk the ungrouped list best first, keep a document's first `per_group` rows, stop at k."""
    groups: dict[str, list[int]] = {}
    for r in rows:
        members = groups.setdefault(r["doc_id"], [])
        if len(members) < per_group:
            members.append(r["_rowid"])
    return list(groups.values())[:k]


def grouped(rows: list[dict[str, Any]]) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for r in rows:
        out.setdefault(r["_group_rank"], []).append(r["_rowid"])
    return list(out.values())


DEEP = 1_000  # every row is a candidate, so grouped and ungrouped searches fuse the same lists


def test_no_two_results_share_a_parent_and_the_best_chunk_leads(chunks: hybrid.Table) -> None:
    q = chunks.search("kernel memory cache", query_type="hybrid").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    hits = q.group_by("doc_id", fuse="rows").limit(5).to_list()
    parents = [h["doc_id"] for h in hits]
    assert len(hits) == 5 and len(set(parents)) == 5
    assert hits[0]["_rowid"] == flat[0]["_rowid"]  # the best group holds the best chunk
    assert grouped(hits) == by_hand(flat, 5, 1)
    assert [h["_group_rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert [h["_group_score"] for h in hits] == sorted((h["_group_score"] for h in hits), reverse=True)


def test_per_group_keeps_each_documents_best_chunks_in_order(chunks: hybrid.Table) -> None:
    q = chunks.search("page disk thread", query_type="hybrid").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    hits = q.group_by("doc_id", per_group=3, fuse="rows").limit(4).to_list()
    assert grouped(hits) == by_hand(flat, 4, 3)
    assert max(len(g) for g in grouped(hits)) == 3
    assert len({h["doc_id"] for h in hits}) == 4


def test_the_declared_parent_is_the_default_and_offset_skips_groups(chunks: hybrid.Table) -> None:
    q = chunks.search("socket lock").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    first = q.group_by(fuse="rows").limit(6).to_list()
    later = q.group_by(fuse="rows").limit(3).offset(3).to_list()
    assert grouped(first) == by_hand(flat, 6, 1)
    assert grouped(later) == grouped(first)[3:]
    assert [h["_group_rank"] for h in later] == [4, 5, 6]


def test_sum_ranks_groups_by_their_candidates_total(chunks: hybrid.Table) -> None:
    q = chunks.search("queue network", query_type="fts").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    totals: dict[str, float] = {}
    for r in flat:
        totals[r["doc_id"]] = totals.get(r["doc_id"], 0.0) + r["_score"]
    hits = q.group_by("doc_id", score="sum").limit(3).to_list()
    best = sorted(totals, key=lambda d: -totals[d])[:3]
    assert [h["doc_id"] for h in hits] == best
    assert [h["_group_score"] for h in hits] == pytest.approx([totals[d] for d in best])


def test_filters_are_respected(chunks: hybrid.Table) -> None:
    q = chunks.search("kernel lock", query_type="hybrid").where("lang = 'en'").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    hits = q.group_by("doc_id", per_group=2, fuse="rows").limit(4).to_list()
    assert hits and all(h["lang"] == "en" for h in hits)
    assert grouped(hits) == by_hand(flat, 4, 2)
    post = chunks.search("kernel lock", query_type="hybrid").where("lang = 'en'", prefilter=False)
    assert all(h["lang"] == "en" for h in post.group_by("doc_id").limit(4).to_list())


def test_deleted_chunks_never_come_back(chunks: hybrid.Table) -> None:
    q = chunks.search("memory page", query_type="hybrid").candidates(DEEP)
    before = q.group_by("doc_id").limit(3).to_list()
    best = before[0]
    chunks.delete(f"doc_id = '{best['doc_id']}' AND chunk_no = {best['chunk_no']}")
    flat = chunks.search("memory page", query_type="hybrid").candidates(DEEP).limit(DEEP).to_list()
    q = chunks.search("memory page", query_type="hybrid").candidates(DEEP)
    after = q.group_by("doc_id", fuse="rows").limit(3).to_list()
    assert best["_rowid"] not in {h["_rowid"] for h in after}
    assert grouped(after) == by_hand(flat, 3, 1)
    by_documents = q.group_by("doc_id", per_group=6).limit(12).to_list()
    assert best["_rowid"] not in {h["_rowid"] for h in by_documents} and len(by_documents) == 12 * 6 - 1


def test_groups_come_from_the_reranked_order(chunks: hybrid.Table) -> None:
    by_length = CallableReranker(lambda q, texts: [len(t) for t in texts], name="longest")
    q = chunks.search("cache socket", query_type="hybrid").candidates(DEEP).rerank(by_length)
    flat = q.limit(DEEP).to_list()
    hits = q.group_by("doc_id").limit(4).to_list()
    assert grouped(hits) == by_hand(flat, 4, 1)
    assert [h["_score"] for h in hits] == [len(h["text"]) for h in hits]
    narrow = q.select(["text"]).group_by("doc_id").limit(2).to_list()  # the key is fetched, then dropped
    assert "doc_id" not in narrow[0] and len(narrow) == 2


def test_one_document_filling_the_candidates_makes_the_search_go_deeper(tmp_path: Path) -> None:
    """60 strong chunks of one document outrank the rest in both lists: the default 50 candidates hold
    one group, so the search deepens until it finds the 4 groups asked for."""
    rows = [{"doc_id": "big", "chunk_no": i, "text": "alpha alpha alpha beta"} for i in range(60)]
    rows += [{"doc_id": f"small{i}", "chunk_no": 0, "text": f"alpha filler{i} words here"} for i in range(5)]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    hits = t.search("alpha beta").group_by("doc_id").limit(4).to_list()
    assert [h["doc_id"] for h in hits][0] == "big"
    assert len(hits) == 4 and len({h["doc_id"] for h in hits}) == 4


def test_null_parents_are_groups_of_their_own(tmp_path: Path) -> None:
    rows = [{"doc_id": None, "text": "alpha"}, {"doc_id": None, "text": "alpha alpha"}, {"doc_id": "x", "text": "b"}]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    assert len(t.search("alpha").group_by("doc_id").limit(5).to_list()) == 2


def test_bad_grouping_input_says_what_was_wrong(chunks: hybrid.Table, tmp_path: Path) -> None:
    q = chunks.search("kernel")
    with pytest.raises(SchemaError, match="no column 'nope'"):
        q.group_by("nope")
    with pytest.raises(ValueError, match="per_group must be an integer >= 1"):
        q.group_by("doc_id", per_group=0)
    with pytest.raises(ValueError, match="score must be 'max', 'sum', 'max_mean' or 'max_mean_len'"):
        q.group_by("doc_id", score="mean")  # type: ignore[arg-type]
    plain = hybrid.connect(tmp_path / "other", upkeep=None).create_table("p", [{"text": "kernel"}])
    plain.create_fts_index("text")
    with pytest.raises(SchemaError, match="set_chunking"):
        plain.search("kernel").group_by().to_list()


def test_the_chunk_layout_is_kept_in_the_tables_metadata(chunks: hybrid.Table, tmp_path: Path) -> None:
    reopened = hybrid.connect(tmp_path / "db", upkeep=None).open_table("chunks")
    layout = reopened.chunking
    assert layout is not None and (layout.parent, layout.position) == ("doc_id", "chunk_no")
    assert reopened.versions()[-1].operation == "set_chunking"
    with pytest.raises(SchemaError, match="parent column 'document'"):
        chunks.set_chunking(parent="document")
    with pytest.raises(SchemaError, match="position column 'text' must hold integers"):
        chunks.set_chunking(parent="doc_id", position="text")
    chunks.add([{"doc_id": "d99", "chunk_no": 0, "lang": "en", "text": "new"}])
    assert chunks.chunking == layout  # later versions keep it


def test_ingested_chunks_know_their_document(tmp_path: Path) -> None:
    from hybrid.ingest.pipeline import ingest

    (tmp_path / "a.md").write_text("# Guide\n\n" + "\n\n".join(f"Paragraph {i} about kernels." for i in range(40)))
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    ingest(db, "docs", [tmp_path / "a.md"], embedder=HashingEmbedder(dim=16), chunker=_small())
    t = db.open_table("docs")
    assert t.chunking is not None and (t.chunking.parent, t.chunking.position, t.chunking.heading) == (
        "source",
        "chunk",
        "heading",
    )
    hits = t.search("kernels paragraph").group_by().limit(5).to_list()
    assert len(hits) == 1 and hits[0]["source"] == "a.md"


def _small() -> Any:
    from hybrid.ingest.chunking import Chunker

    return Chunker(size=80, overlap=0)


def max_mean_by_hand(flat: list[dict[str, Any]], sizes: dict[str, int]) -> dict[str, float]:
    """The oracle for score="max_mean": half the best candidate, half the mean over all the document's
    live chunks, chunks outside the candidates counted at the weakest candidate's score."""
    floor = min(r["_score"] for r in flat)
    scores: dict[str, list[float]] = {}
    for r in flat:
        scores.setdefault(r["doc_id"], []).append(r["_score"])
    return {d: (max(s) + (sum(s) + (sizes[d] - len(s)) * floor) / sizes[d]) / 2 for d, s in scores.items()}


def test_max_mean_scores_a_document_by_its_best_chunk_and_its_mean(chunks: hybrid.Table) -> None:
    chunks.delete("doc_id = 'd3' AND chunk_no > 1")  # d3 keeps 2 live chunks, the others 6
    sizes = {f"d{d}": 2 if d == 3 else 6 for d in range(12)}
    q = chunks.search("kernel memory", query_type="fts").candidates(DEEP)
    flat = q.limit(DEEP).to_list()  # the chunks holding a query word: the others count at the floor
    assert len(flat) < 70
    want = max_mean_by_hand(flat, sizes)
    hits = q.group_by("doc_id", score="max_mean").limit(5).to_list()
    order = sorted(want, key=lambda d: -want[d])[:5]
    assert [h["doc_id"] for h in hits] == order
    assert [h["_group_score"] for h in hits] == pytest.approx([want[d] for d in order])


def test_max_mean_len_weighs_each_chunk_by_its_text_length(chunks: hybrid.Table) -> None:
    chunks.delete("doc_id = 'd3' AND chunk_no > 1")
    live = chunks.to_arrow(["doc_id", "text"], with_rowid=True).to_pylist()
    length = {r["_rowid"]: max(len(r["text"]), 1) for r in live}
    total: dict[str, int] = {}
    for r in live:
        total[r["doc_id"]] = total.get(r["doc_id"], 0) + length[r["_rowid"]]
    q = chunks.search("kernel memory", query_type="fts").candidates(DEEP)
    flat = q.limit(DEEP).to_list()
    floor = min(r["_score"] for r in flat)
    seen: dict[str, list[tuple[float, int]]] = {}
    for r in flat:
        seen.setdefault(r["doc_id"], []).append((r["_score"], length[r["_rowid"]]))
    want = {
        d: (max(s for s, _ in xs) + (sum(s * n for s, n in xs) + (total[d] - sum(n for _, n in xs)) * floor) / total[d])
        / 2
        for d, xs in seen.items()
    }
    hits = q.group_by("doc_id", score="max_mean_len").limit(5).to_list()
    order = sorted(want, key=lambda d: -want[d])[:5]
    assert [h["doc_id"] for h in hits] == order
    assert [h["_group_score"] for h in hits] == pytest.approx([want[d] for d in order])
    # the same over each branch's groups (fuse="groups") and the whole hybrid search run
    both = chunks.search("kernel memory").candidates(DEEP).group_by("doc_id", score="max_mean_len", fuse="groups")
    assert len({h["doc_id"] for h in both.limit(5).to_list()}) == 5


def test_max_mean_len_lets_a_short_tail_chunk_weigh_little(tmp_path: Path) -> None:
    # "two" is one long chunk about the query and a short tail; "one" a single chunk a little weaker.
    # Counted as a whole chunk, the tail halves two's mean and "one" wins; weighed by its length, "two".
    body = "rotation of signing keys, monthly rotation of keys " + " ".join(f"filler{i}" for i in range(40))
    rows = [
        {"doc_id": "two", "chunk_no": 0, "text": body},
        {"doc_id": "two", "chunk_no": 1, "text": "end."},
        {"doc_id": "one", "chunk_no": 0, "text": "rotation of signing keys " + " ".join(f"pad{i}" for i in range(34))},
    ]
    rows += [{"doc_id": f"o{n}", "chunk_no": 0, "text": f"keys to cabinet {n} in the hall"} for n in range(4)]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    t.set_chunking(parent="doc_id", position="chunk_no")
    q = t.search("rotation of signing keys", query_type="fts")
    assert [h["doc_id"] for h in q.limit(2).to_list()] == ["two", "one"]
    assert [h["doc_id"] for h in q.group_by(score="max_mean").limit(2).to_list()] == ["one", "two"]
    assert [h["doc_id"] for h in q.group_by(score="max_mean_len").limit(2).to_list()] == ["two", "one"]
    bare = hybrid.connect(tmp_path / "db2", upkeep=None).create_table("b", [{"k": "a", "body": "rotation keys"}])
    bare.create_fts_index("body")
    with pytest.raises(SchemaError, match="max_mean_len"):
        bare.search("keys", query_type="fts").group_by("k", score="max_mean_len").to_list()


def test_max_mean_stops_a_long_document_winning_on_one_chunk(tmp_path: Path) -> None:
    # "toc" names every topic in one chunk among many chunks about nothing; "short" is a one-chunk
    # document about the query. By its best chunk, the table of contents wins; by max_mean, the short one.
    rows = [{"doc_id": "toc", "chunk_no": 0, "text": "rotation of signing keys, backups, quotas, rotation"}]
    rows += [{"doc_id": "toc", "chunk_no": n, "text": f"chapter {n} about something else"} for n in range(1, 9)]
    rows += [{"doc_id": "short", "chunk_no": 0, "text": "the rotation of signing keys happens monthly, the team says"}]
    rows += [
        {"doc_id": f"other{n}", "chunk_no": 0, "text": f"keys to cabinet {n} in the hall by the door"} for n in range(4)
    ]
    t = hybrid.connect(tmp_path / "db", upkeep=None).create_table("c", rows)
    t.create_fts_index("text")
    t.set_chunking(parent="doc_id", position="chunk_no")
    q = t.search("rotation of signing keys", query_type="fts")  # the other documents match weakly (keys)
    assert [h["doc_id"] for h in q.group_by().limit(2).to_list()] == ["toc", "short"]
    assert [h["doc_id"] for h in q.group_by(score="max_mean").limit(2).to_list()] == ["short", "toc"]
    with pytest.raises(ValueError, match="max_mean"):
        q.group_by(score="mean")  # type: ignore[arg-type]


def rrf_of_groups(table: hybrid.Table, text: str, where: str | None = None) -> dict[str, float]:
    """The oracle of document-level fusion: each branch searched alone, its documents ranked by their
    best chunk, then RRF (k = 20, equal weights) over the two document lists."""
    fused: dict[str, float] = {}
    for kind in ("vector", "fts"):
        q = table.search(text, query_type=kind).candidates(DEEP)
        rows = (q.where(where) if where else q).limit(DEEP).to_list()
        docs = list(dict.fromkeys(r["doc_id"] for r in rows))  # best first: each document at its best chunk
        for rank, d in enumerate(docs, start=1):
            fused[d] = fused.get(d, 0.0) + 1.0 / (20 + rank)
    return fused


@pytest.mark.parametrize(("text", "where"), [("kernel memory cache", None), ("kernel lock", "lang = 'en'")])
def test_hybrid_groups_fuse_each_branchs_documents(chunks: hybrid.Table, text: str, where: str | None) -> None:
    want = rrf_of_groups(chunks, text, where)
    q = chunks.search(text, query_type="hybrid").fuse(RRF()).weights("equal").candidates(DEEP)
    q = q.where(where) if where else q
    hits = q.group_by("doc_id", per_group=2, fuse="groups").limit(4).to_list()
    docs = list(dict.fromkeys(h["doc_id"] for h in hits))
    assert len(docs) == 4 and all(len(g) == 2 for g in grouped(hits))
    assert [h["_group_score"] for h in hits[::2]] == pytest.approx([want[d] for d in docs])
    assert sorted(want.values(), reverse=True)[:4] == pytest.approx([want[d] for d in docs])
    flat = q.limit(DEEP).to_list()  # within a group, its chunks in the order of the fused chunk list
    for d, members in zip(docs, grouped(hits)):
        assert members == [r["_rowid"] for r in flat if r["doc_id"] == d][:2]
    if where:
        assert all(h["lang"] == "en" for h in hits)


def test_document_fusion_lifts_a_document_both_branches_rank_first() -> None:
    # Document "a" leads both branches, by a different chunk in each; "b" has one chunk second in both.
    ids = lambda *x: np.array(x, dtype=np.uint64)  # noqa: E731
    keys = {1: "a", 2: "a", 3: "b", 4: "c"}
    dense = Ranked(ids(1, 3, 4), np.array([0.9, 0.8, 0.1]))
    text = Ranked(ids(2, 3, 4), np.array([9.0, 8.0, 1.0]))
    assert RRF(k=1).fuse([dense, text])[0].tolist()[0] == 3  # by chunks, "b" leads
    g = fuse_groups(RRF(k=1), [dense, text], lambda r: [keys[int(i)] for i in r], 3, per_group=2)
    assert g.ids.tolist() == [1, 2, 3, 4]  # "a" (both its chunks, best fused chunk first), "b", "c"
    assert g.group_ranks.tolist() == [1, 1, 2, 3]
    assert g.group_scores.tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.5])
    later = fuse_groups(RRF(k=1), [dense, text], lambda r: [keys[int(i)] for i in r], 2, skip=1)
    assert later.ids.tolist() == [3, 4] and later.n_groups == 3


def test_rows_fusion_stays_available_and_the_plan_says_which(chunks: hybrid.Table) -> None:
    q = chunks.search("page disk", query_type="hybrid")
    assert "group lists fused" in q.group_by("doc_id", fuse="groups").explain()
    assert "group lists fused" not in q.group_by("doc_id").explain()  # rows fused first: the default
    with pytest.raises(ValueError, match="fuse"):
        q.group_by(fuse="chunks")  # type: ignore[arg-type]


def _codes_by_row(key: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return key[ids.astype(np.int64)]


def _keys_by_row(key: np.ndarray, ids: np.ndarray) -> list[int | None]:
    return [None if c < 0 else int(c) for c in _codes_by_row(key, ids)]


@pytest.mark.parametrize("fusion", [RRF(), Linear(alpha=0.7), DBSF()])
def test_the_numpy_path_groups_exactly_as_the_general_one(fusion: Any) -> None:
    rng = np.random.default_rng(7)
    for trial in range(40):
        n_rows = int(rng.integers(1, 60))
        key = rng.integers(-1, max(2, n_rows // 3), n_rows)  # -1: a null key, a group of its own
        lists = []
        for weight in (0.8, 1.3):
            ids = rng.choice(n_rows, int(rng.integers(0, n_rows + 1)), replace=False).astype(np.uint64)
            scores = np.round(rng.random(len(ids)), 1)  # rounded: ties between rows and groups
            lists.append(Ranked(ids, scores, weight))
        codes = functools.partial(_codes_by_row, key)
        keys = functools.partial(_keys_by_row, key)
        for skip, per_group in ((0, 1), (2, 3)):
            fast = fuse_groups(fusion, lists, keys, 5, skip=skip, per_group=per_group, codes_of=codes)
            slow = fuse_groups(fusion, lists, keys, 5, skip=skip, per_group=per_group)
            assert fast.ids.tolist() == slow.ids.tolist(), trial
            assert fast.group_ranks.tolist() == slow.group_ranks.tolist(), trial
            assert fast.group_scores.tolist() == pytest.approx(slow.group_scores.tolist()), trial
            assert fast.scores.tolist() == pytest.approx(slow.scores.tolist()) and fast.n_groups == slow.n_groups
