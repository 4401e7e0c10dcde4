"""Title rows (`set_chunking(title_row=...)`): counted in the group's mean, never its best row, never returned."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import hybrid
from hybrid.embedders import HashingEmbedder
from hybrid.errors import SchemaError
from hybrid.query.grouping import group
from hybrid.rerankers.callable import CallableReranker

DEEP = 1_000  # every row is a candidate


def faq_rows() -> list[dict[str, Any]]:
    """Documents with a title row (chunk 0, ``is_title``) and text chunks after it. The FAQ's title
    is the query nearly word for word; its text answers it in other words."""
    rows: list[dict[str, Any]] = []

    def doc(name: str, title: str, chunks: list[str], lang: str = "en") -> None:
        rows.append({"doc_id": name, "chunk_no": 0, "is_title": True, "lang": lang, "text": title})
        for n, text in enumerate(chunks, 1):
            rows.append({"doc_id": name, "chunk_no": n, "is_title": False, "lang": lang, "text": text})

    doc(
        "faq",
        "how do I rotate the signing keys",
        ["keys are rotated monthly by the key service", "the old key stays valid for a week", "contact support"],
    )
    doc("manual", "operations manual", ["the rotate command renews signing certificates", "backups run nightly"])
    doc("blog", "team news", ["we moved offices", "signing of the lease happened in may"], lang="de")
    for n in range(4):
        doc(f"other{n}", f"storage locker {n}", [f"the keys to cabinet {n} hang in the hall", f"room {n} is upstairs"])
    return rows


@pytest.fixture
def faq(tmp_path: Path) -> hybrid.Table:
    db = hybrid.connect(tmp_path / "db", upkeep=None)
    t = db.create_table("faq", faq_rows(), embedding={"vector": ("text", HashingEmbedder(dim=64))})
    t.create_fts_index("text")
    t.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title")
    return t


def by_hand(flat: list[dict[str, Any]], sizes: dict[str, int]) -> dict[str, float]:
    """The oracle: half the best text chunk's score plus half the mean over all the document's live
    rows (title row included), rows outside the candidates at the weakest candidate's score; a
    document without a text chunk among the candidates has the weakest score as its best."""
    floor = min(r["_score"] for r in flat)
    rows: dict[str, list[float]] = {}
    best: dict[str, float] = {}
    for r in flat:
        rows.setdefault(r["doc_id"], []).append(r["_score"])
        if not r["is_title"]:
            best[r["doc_id"]] = max(best.get(r["doc_id"], -np.inf), r["_score"])
    return {d: (best.get(d, floor) + (sum(s) + (sizes[d] - len(s)) * floor) / sizes[d]) / 2 for d, s in rows.items()}


def with_titles(table: hybrid.Table, q: Any, k: int = DEEP) -> list[dict[str, Any]]:
    """`q`'s flat rows, title rows among them (as the grouping sees its candidates): run with the
    title row mark taken off, then put back (a flat search never returns title rows)."""
    table.set_chunking(parent="doc_id", position="chunk_no")
    try:
        found: list[dict[str, Any]] = q.limit(k).to_list()
    finally:
        table.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title")
    return found


def sizes_of(table: hybrid.Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in table.to_arrow(["doc_id"]).column("doc_id").to_pylist():
        out[d] = out.get(d, 0) + 1
    return out


@pytest.mark.parametrize("query_type", ["fts", "hybrid"])
def test_a_title_row_counts_in_the_mean_but_is_never_the_best_row_nor_returned(
    faq: hybrid.Table, query_type: str
) -> None:
    q = faq.search("how do I rotate the signing keys", query_type=query_type).candidates(DEEP)
    flat = with_titles(faq, q)
    assert flat[0]["is_title"] and flat[0]["doc_id"] == "faq"  # the title is the best row of all
    want = by_hand(flat, sizes_of(faq))
    hits = q.group_by(score="max_mean").limit(5).to_list()
    order = sorted(want, key=lambda d: -want[d])[:5]
    assert [h["doc_id"] for h in hits] == order
    assert [h["_group_score"] for h in hits] == pytest.approx([want[d] for d in order])
    assert not any(h["is_title"] for h in hits)
    faq_hit = next(h for h in hits if h["doc_id"] == "faq")
    best_text = max((r for r in flat if r["doc_id"] == "faq" and not r["is_title"]), key=lambda r: r["_score"])
    assert faq_hit["_rowid"] == best_text["_rowid"]
    for score in ("max", "sum", "max_mean_len"):
        for fuse in ("rows", "groups"):
            found = q.group_by(per_group=3, score=score, fuse=fuse).limit(7).to_list()  # type: ignore[arg-type]
            assert found and not any(h["is_title"] for h in found), (score, fuse)
            assert len({h["doc_id"] for h in found}) == 7


def test_the_title_row_lifts_its_document_above_a_document_without_one(faq: hybrid.Table) -> None:
    # Without its title row (deleted), the FAQ's text ranks below the manual that quotes the query;
    # its title counted once in its mean lifts it above; counted as its best row as well (no mark)
    # it would be returned as the FAQ's passage.
    q = faq.search("how do I rotate the signing keys", query_type="fts").candidates(DEEP)
    with_title = [h["doc_id"] for h in q.group_by(score="max_mean").limit(2).to_list()]
    assert with_title == ["faq", "manual"]
    unmarked = faq.search("how do I rotate the signing keys", query_type="fts").candidates(DEEP)
    faq.set_chunking(parent="doc_id", position="chunk_no")  # the same table, no title row declared
    first = unmarked.group_by(score="max_mean").limit(1).to_list()[0]
    assert first["doc_id"] == "faq" and first["is_title"]  # as before the mark existed: the title is returned
    faq.set_chunking(parent="doc_id", position="chunk_no", title_row="is_title")
    faq.delete("is_title AND doc_id = 'faq'")
    without = faq.search("how do I rotate the signing keys", query_type="fts").candidates(DEEP)
    assert [h["doc_id"] for h in without.group_by(score="max_mean").limit(2).to_list()] == ["manual", "faq"]


def test_a_table_whose_rows_are_all_passages_groups_exactly_as_without_the_mark(faq: hybrid.Table) -> None:
    faq.delete("is_title")
    q = faq.search("keys rotate", query_type="hybrid").candidates(DEEP)
    runs = []
    for title_row in ("is_title", None):
        faq.set_chunking(parent="doc_id", position="chunk_no", title_row=title_row)
        runs.append(
            [
                (h["_rowid"], h["_group_rank"], round(h["_group_score"], 12))
                for score in ("max", "max_mean", "sum")
                for h in q.group_by(per_group=2, score=score).limit(5).to_list()  # type: ignore[arg-type]
            ]
        )
    assert runs[0] == runs[1]


def test_filters_and_deletes_are_respected(faq: hybrid.Table) -> None:
    q = faq.search("signing keys", query_type="hybrid").where("lang = 'en'").candidates(DEEP)
    hits = q.group_by(score="max_mean").limit(10).to_list()
    assert hits and all(h["lang"] == "en" and not h["is_title"] for h in hits)
    assert "blog" not in {h["doc_id"] for h in hits}
    faq.delete("doc_id = 'faq' AND NOT is_title")  # the FAQ keeps only its title: no passage to return
    q = faq.search("how do I rotate the signing keys", query_type="hybrid").candidates(DEEP)
    assert with_titles(faq, q, 1)[0]["doc_id"] == "faq"  # its title still matches best of all rows
    assert "faq" not in {h["doc_id"] for h in q.limit(DEEP).to_list()}  # a flat search: passages only
    hits = q.group_by(score="max_mean").limit(10).to_list()
    assert "faq" not in {h["doc_id"] for h in hits} and len(hits) == 6


def test_a_group_found_by_its_title_alone_takes_the_weakest_score_as_its_best_passage() -> None:
    ids = np.array([1, 2, 3, 4], dtype=np.uint64)
    scores = np.array([0.9, 0.8, 0.6, 0.5])
    marked = np.array([True, True, False, False])  # a's only row and b's best row are titles
    g = group(ids, scores, ["a", "b", "b", "c"], 3, score="max", marked=marked)
    assert g.ids.tolist() == [3, 1, 4] and g.group_scores.tolist() == [0.6, 0.5, 0.5]
    assert g.stand_in is not None and g.stand_in.tolist() == [False, True, False]
    assert g.scores.tolist() == [0.6, 0.5, 0.5]  # the stand-in is scored as the weakest candidate
    # max_mean: a = (0.5 + 0.9) / 2; b's title (0.8) is in its mean, not its best row: (0.6 + (0.8 + 0.6) / 2) / 2
    g = group(ids, scores, ["a", "b", "b", "c"], 3, score="max_mean", sizes=[1, 2, 2, 1], marked=marked)
    assert g.ids.tolist() == [1, 3, 4] and g.group_scores.tolist() == pytest.approx([0.7, 0.65, 0.5])


def test_a_document_found_by_its_title_alone_returns_its_first_allowed_passage(faq: hybrid.Table) -> None:
    q = faq.search("locker", query_type="fts").candidates(DEEP)  # only the other<n> titles say "locker"
    assert {r["is_title"] for r in with_titles(faq, q)} == {True}
    assert q.limit(DEEP).to_list() == []  # a flat search returns no title row
    hits = q.group_by(score="max_mean").limit(10).to_list()
    assert sorted(h["doc_id"] for h in hits) == [f"other{n}" for n in range(4)]
    assert all(not h["is_title"] and h["chunk_no"] == 1 for h in hits)
    filtered = q.where("chunk_no <> 1").group_by(score="max_mean").limit(10).to_list()
    assert filtered and all(h["chunk_no"] == 2 for h in filtered)
    for fuse in ("rows", "groups"):
        hybrid_hits = faq.search("locker").candidates(DEEP).group_by(fuse=fuse).limit(10).to_list()  # type: ignore[arg-type]
        assert hybrid_hits and not any(h["is_title"] for h in hybrid_hits)
    faq.delete("doc_id = 'other0' AND NOT is_title")  # no passage left: nothing to stand in
    assert "other0" not in {h["doc_id"] for h in q.group_by().limit(10).to_list()}
    by_length = CallableReranker(lambda _, texts: [float(len(t)) for t in texts], name="longest")
    assert q.rerank(by_length).group_by().limit(10).to_list() == []  # a reranker scores rows it read


def test_expansion_passes_over_title_rows(faq: hybrid.Table) -> None:
    q = faq.search("keys are rotated monthly", query_type="fts").where("doc_id = 'faq'").candidates(DEEP)
    hits = q.group_by(score="max_mean").expand(neighbours=1).limit(1).to_list()
    hit = hits[0]
    assert hit["chunk_no"] == 1
    assert hit["_context"].startswith("keys are rotated monthly") and "how do I rotate" not in hit["_context"]
    assert hit["_context"].endswith("the old key stays valid for a week")
    whole = q.group_by().expand(parent=True).limit(1).to_list()[0]["_context"]
    assert "how do I rotate" not in whole and whole.endswith("contact support")
    # a flat search returns no title row: the passage found is expanded without its document's title
    flat = faq.search("how do I rotate the signing keys", query_type="fts").where("doc_id = 'faq'")
    first = flat.expand(neighbours=1).limit(1).to_list()[0]
    assert not first["is_title"] and "how do I rotate" not in first["_context"]


def test_highlights_skip_title_rows(faq: hybrid.Table) -> None:
    marked = faq.to_arrow(["is_title"], where="is_title", with_rowid=True).column("_rowid").to_pylist()
    # a flat search returns no title row; a pinned one is returned as asked
    hits = faq.search("signing keys", query_type="fts").pin(marked).highlight().limit(DEEP).to_list()
    titles = [h for h in hits if h["is_title"]]
    passages = [h for h in hits if not h["is_title"]]
    assert titles and passages
    assert all(h["_highlight"] is None and h["_highlight_spans"] is None for h in titles)
    assert all(h["_highlight"] and "<em>" in h["_highlight"] for h in passages)


def test_a_title_row_column_must_exist_and_hold_booleans(faq: hybrid.Table) -> None:
    with pytest.raises(SchemaError, match="title_row column 'nope' is not in the table"):
        faq.set_chunking(parent="doc_id", title_row="nope")
    with pytest.raises(SchemaError, match="title_row column 'chunk_no' must hold booleans"):
        faq.set_chunking(parent="doc_id", title_row="chunk_no")
    assert faq.chunking is not None and faq.chunking.title_row == "is_title"  # unchanged by the refusals
