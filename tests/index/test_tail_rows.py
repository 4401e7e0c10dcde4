"""Per-version state of the rows an index does not hold yet (:mod:`hybrid.index.tail`).

A writer that searches makes a new version's tail rows right after its commit (one that only
writes reads none of its backlog); a version's rows
appended since the index was built are one run of the log (their vectors a view, no
copy); rows deleted among them are gathered. Every way must score like exact search.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.index import tail
from hybrid.index.catalog import IndexEntry
from hybrid.index.fulltext import COMBINED_FIELD
from hybrid.index.tail import TailRows, TextTail, VectorTail, text_tail, unindexed_rows, vector_tail
from hybrid.index.vector import top_k
from hybrid.index.view import IndexedSnapshot

DIM = 8


def _table(tmp_path: Path, n: int = 50) -> hybrid.Table:
    rng = np.random.default_rng(3)
    rows = [{"id": i, "text": f"alpha w{i % 7} w{i}", "vector": rng.standard_normal(DIM).tolist()} for i in range(n)]
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows)
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="l2")
    return t


def _add(t: hybrid.Table, start: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t.add([{"id": i, "text": f"alpha beta w{i % 5} w{i}", "vector": rng.standard_normal(DIM).tolist()}
           for i in range(start, start + n)])  # fmt: skip


def _search(t: hybrid.Table) -> None:
    t.search("alpha", query_type="hybrid").vector(np.ones(DIM, np.float32)).limit(3).to_list()


def _entries(t: hybrid.Table) -> tuple[IndexedSnapshot, IndexEntry, IndexEntry]:
    view = t.indexed_snapshot()
    vec = next(e for e in view.entries() if e.kind == "vector")
    fts = next(e for e in view.entries() if e.kind == "fts")
    return view, vec, fts


def test_the_writer_makes_a_new_versions_tail_rows_as_a_view_of_the_log(tmp_path: Path) -> None:
    t = _table(tmp_path)
    _search(t)  # a table that searches
    for i in range(5):
        _add(t, 100 + i, 1, i)
    view, vec, fts = _entries(t)
    store = view.cache.stores["tail_rows"]
    keys = [k for k in store if k[-1] == view.version]
    assert len(keys) == 2  # vector and text, made before any search of this version
    rows = unindexed_rows(view, vec, vector_tail(view, vec, "vector"))
    assert rows.run is not None and len(rows.positions) == 5
    assert rows.block is not None and rows.block[1].base is not None  # a view of the log, not a copy
    assert rows is unindexed_rows(view, vec, vector_tail(view, vec, "vector"))  # kept per version


def test_a_writer_that_never_searched_reads_no_backlog_and_its_first_search_finds_every_row(tmp_path: Path) -> None:
    t = _table(tmp_path)
    _add(t, 100, 1, 0)
    _search(t)
    for i in range(1, 6):
        _add(t, 100 + i, 1, i)
    fresh = hybrid.connect(tmp_path, upkeep=None).open_table("docs")  # a new table object: nothing kept
    _add(fresh, 200, 1, 9)
    _add(fresh, 201, 1, 10)
    view, vec, fts = _entries(fresh)
    for namespace in ("vector_tails", "text_tails", "tail_rows"):  # the commits logged nothing
        assert not view.cache.stores.get(namespace)
    data = fresh.to_arrow(["id", "vector"])
    vectors = np.asarray(data.column("vector").to_pylist(), np.float32)
    for row in (-1, -3, -8):  # rows of the new object's commits and of the old one's: each its own top hit
        got = fresh.search(vectors[row], vector_column="vector").limit(1).to_list()
        assert got[0]["id"] == data.column("id")[row].as_py()
    assert fresh.search("w201").limit(1).to_list()[0]["id"] == 201  # the text tail too
    assert view.cache.stores.get("vector_tails") and view.cache.stores.get("text_tails")  # logged by the search


@pytest.mark.parametrize("delete_inside", [False, True])
def test_tail_search_is_exact_over_runs_and_gathered_rows(
    tmp_path: Path, delete_inside: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = _table(tmp_path)
    _search(t)  # the writer logs the rows it adds (a search later finds the deleted ones' gaps in the log)
    _add(t, 100, 30, 7)
    if delete_inside:  # the version's unindexed rows are no longer one run of the log
        t.delete("id IN (105, 117)")
    view, vec, fts = _entries(t)
    log = vector_tail(view, vec, "vector")
    rows = unindexed_rows(view, vec, log)
    assert (rows.run is None) == delete_inside
    data = t.to_arrow(["id", "vector"], with_rowid=True)
    mine = np.asarray(data.column("id")) >= 100
    ids = np.asarray(data.column("_rowid"))[mine]
    vectors = np.asarray(data.column("vector").to_pylist(), np.float32)[mine]
    q = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    got_ids, got_d = log.search(rows, q, "l2", 5)
    want = np.argsort(((vectors - q) ** 2).sum(axis=1))[:5]
    assert got_ids.tolist() == ids[want].tolist()
    assert got_d == pytest.approx(((vectors[want] - q) ** 2).sum(axis=1), rel=1e-4)
    # candidates: every row (a few), unsorted, or the top k (many); both hold the search's top 5
    cand_ids, cand_d = log.candidates(rows, q, "l2", 5)
    assert sorted(cand_ids.tolist()) == sorted(ids.tolist()) and len(cand_d) == len(ids)
    monkeypatch.setattr(tail, "UNSORTED_ROWS", 3)
    few_ids, _ = log.candidates(rows, q, "l2", 5)
    assert few_ids.tolist() == got_ids.tolist()


def test_text_tail_run_and_mask_score_alike(tmp_path: Path) -> None:
    t = _table(tmp_path)
    _add(t, 100, 20, 9)
    view, vec, fts = _entries(t)
    log = text_tail(view, fts)
    assert isinstance(log, TextTail) and not isinstance(log, VectorTail)
    rows = unindexed_rows(view, fts, log)
    assert rows.run is not None
    masked = TailRows(rows.positions, rows.logged)  # the same rows through the live-mask path
    for query in ("beta", "w3 beta", "alpha w101", "nothing"):
        a = log.search(rows, query, None, 10, 1.2, 0.75)
        b = log.search(masked, query, None, 10, 1.2, 0.75)
        assert a[0].tolist() == b[0].tolist() and a[1] == pytest.approx(b[1])
    ids, scores = log.search(rows, "beta", None, 50, 1.2, 0.75)
    assert len(ids) == 20 and (scores > 0).all()  # every new row has "beta", none of the indexed ones count


def _bm25_reference(log: TextTail, texts: dict[int, dict[str, str]], query: str, boosts: dict[str, float] | None,
                    k1: float, b: float) -> dict[int, float]:  # fmt: skip
    """Each tail row's BM25 over the main index's statistics, term by term in plain Python: per column
    (boosted) or, for a BM25F index without boosts, on the combined field (counts and lengths weighted)."""
    index, terms = log.index, log.index.analyzer.terms
    counted = {r: {c: Counter(terms(t[c])) for c in index.columns} for r, t in texts.items()}
    weights = index.weights or {}
    if index.weights is not None and not boosts:
        combined = {r: sum((Counter({w: n * weights.get(c, 1) for w, n in cs[c].items()}) for c in index.columns),
                           Counter()) for r, cs in counted.items()}  # fmt: skip
        avg = sum(weights.get(c, 1) * log.avg_len[c] for c in index.columns)
        fields = [(COMBINED_FIELD, 1.0, combined, avg)]
    else:
        fields = [(f, (boosts or {}).get(c, 1.0), {r: cs[c] for r, cs in counted.items()}, log.avg_len[c])
                  for f, c in zip(index.fields, index.columns)]  # fmt: skip
    n_docs = index.num_docs + index.deleted_docs + len(texts)
    scores = dict.fromkeys(texts, 0.0)
    for name, boost, per_row, avg in fields:
        for term, q_count in Counter(terms(query)).items():
            df = int(index.searcher.doc_freq(name, term)) + sum(1 for c in per_row.values() if c[term])
            idf = math.log(1 + (n_docs - df + 0.5) / (df + 0.5))
            for r, c in per_row.items():
                if c[term]:
                    norm = k1 * (1 - b + b * sum(c.values()) / avg)
                    scores[r] += q_count * boost * idf * c[term] * (k1 + 1) / (c[term] + norm)
    return {r: s for r, s in scores.items() if s > 0}


def test_text_tail_scores_every_field_and_term_as_bm25_on_the_index_statistics(tmp_path: Path) -> None:
    rows = [{"id": i, "title": f"alpha w{i % 3}", "body": f"beta w{i % 5} w{i}"} for i in range(40)]
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", rows)
    # English: word fields only (the word-piece field's tail scores are tests/index/test_pieces.py's)
    t.create_fts_index(["title", "body"], weights={"title": 2, "body": 1}, language="en")
    t.search("alpha").limit(1).to_list()  # loaded: the writer logs what it adds
    t.add([{"id": i, "title": f"alpha beta w{i % 4}", "body": " ".join([f"beta w{i % 3} gamma"] * (1 + i % 3))}
           for i in range(100, 114)])  # fmt: skip
    t.delete("id = 105")  # the rows are no longer one run of the log: the live-mask path
    data = t.to_arrow(["id", "title", "body"], with_rowid=True).to_pylist()
    texts = {r["_rowid"]: r for r in data if r["id"] >= 100}
    view = t.indexed_snapshot()
    fts = next(e for e in view.entries() if e.kind == "fts")
    log = text_tail(view, fts)
    tail = unindexed_rows(view, fts, log)
    assert tail.run is None and len(tail.positions) == 13
    for boosts in (None, {"title": 3.0, "body": 0.5}):
        for query in ("beta w1 gamma", "alpha alpha w2", "w0 nothing"):
            ids, scores = log.search(tail, query, boosts, 50, 1.2, 0.75)
            want = _bm25_reference(log, texts, query, boosts, 1.2, 0.75)
            assert dict(zip(ids.tolist(), scores.tolist())) == pytest.approx(want, rel=1e-5)
            assert scores.tolist() == sorted(scores.tolist(), reverse=True)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_merging_a_vector_tail_skips_rows_farther_than_the_index_hits(tmp_path: Path, metric: str) -> None:
    t = _table(tmp_path)
    _search(t)
    _add(t, 100, 40, 11)
    view, vec, fts = _entries(t)
    log = vector_tail(view, vec, "vector")
    rows = unindexed_rows(view, vec, log)
    rng = np.random.default_rng(5)
    for _ in range(20):
        q = rng.standard_normal(DIM).astype(np.float32)
        every_ids, every_d = log.candidates(rows, q, metric, 1_000)
        order = np.argsort(every_d)
        # made-up index hits whose farthest ties a tail row exactly: that row may enter (ties by row id)
        hits_d = np.sort(np.append(rng.uniform(0, float(every_d[order[2]]), 4), every_d[order[2]])).astype(np.float32)
        hits_ids = np.arange(10, 15, dtype=np.uint64)
        got = log.merged(rows, q, metric, 5, hits_ids, hits_d)
        want = top_k(np.concatenate([hits_ids, every_ids]), np.concatenate([hits_d, every_d]), 5)
        assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
        near = log.candidates(rows, q, metric, 5, float(hits_d.max()))[0]
        assert sorted(near.tolist()) == sorted(every_ids[every_d <= hits_d.max()].tolist())  # 2-3 of 40
    far = np.full(5, 1e-9, np.float32)  # hits nearer than every tail row: they come back as they were
    got = log.merged(rows, np.ones(DIM, np.float32), metric, 5, np.arange(5, dtype=np.uint64)[::-1], far)
    assert got[0].tolist() == [4, 3, 2, 1, 0]


def test_tail_bm25_equals_the_index_after_optimize(tmp_path: Path) -> None:
    """A row searched beside the index scores what the index gives it once it holds it, to within the
    documented tolerance (TextTail: the index's sampled average length, tantivy's quantized lengths)."""
    rng = np.random.default_rng(2)
    words = [f"w{i}" for i in range(300)]

    def text() -> str:
        return " ".join(rng.choice(words, int(rng.integers(4, 30))))

    db = hybrid.connect(tmp_path, upkeep=None)
    t = db.create_table("docs", [{"id": i, "text": text()} for i in range(400)])
    t.create_fts_index(["text"])
    t.search("w1").limit(1).to_list()
    t.add([{"id": i, "text": text()} for i in range(1_000, 1_040)])
    queries = [" ".join(rng.choice(words, 3)) for _ in range(30)]

    def scores() -> dict[tuple[str, int], float]:
        out = {}
        for query in queries:
            for r in t.search(query).limit(1_000).to_list():
                out[(query, r["id"])] = r["_bm25"]
        return out

    before = scores()
    assert "unindexed rows" in t.search(queries[0]).explain()
    t.optimize()
    assert "unindexed rows" not in t.search(queries[0]).explain()
    after = scores()
    assert before.keys() == after.keys()
    fresh = [key for key in before if key[1] >= 1_000]
    assert len(fresh) >= 20
    for key in fresh:  # measured: 0.3% at most (the indexed rows' scores move more: the index's N grows)
        assert before[key] == pytest.approx(after[key], rel=0.02), key


def test_a_filter_picks_among_the_tail_rows_without_changing_their_scores(tmp_path: Path) -> None:
    """A filtered search scores the rows the index misses on the statistics of all of them, as the index
    scores its rows whatever the filter (and as it will once it holds them); the filter picks the hits."""
    rng = np.random.default_rng(6)
    db = hybrid.connect(tmp_path, upkeep=None)
    rows = [{"id": i, "cat": "ab"[i % 2], "text": f"alpha w{i % 9}", "vector": rng.standard_normal(DIM).tolist()}
            for i in range(60)]  # fmt: skip
    t = db.create_table("docs", rows)
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="l2")
    t.search("alpha").limit(1).to_list()
    t.add([{"id": i, "cat": "ab"[i % 3 == 0], "text": f"beta w{i % 4}", "vector": rng.standard_normal(DIM).tolist()}
           for i in range(100, 130)])  # fmt: skip
    every = {r["id"]: r["_bm25"] for r in t.search("beta w1").limit(100).to_list() if r["id"] >= 100}
    assert len(every) == 30
    found = t.search("beta w1").where("cat = 'b'").limit(100).to_list()
    picked = {r["id"]: r["_bm25"] for r in found if r["id"] >= 100}
    assert picked.keys() == {i for i in every if i % 3 == 0}
    assert picked == {i: every[i] for i in picked}
    q = rng.standard_normal(DIM).astype(np.float32)
    near = t.search(q).where("cat = 'b'").limit(5).to_list()
    data = t.to_arrow(["id", "cat", "vector"]).to_pylist()
    want = sorted(
        (float(((np.asarray(r["vector"], np.float32) - q) ** 2).sum()), r["id"]) for r in data if r["cat"] == "b"
    )
    assert [r["id"] for r in near] == [i for _, i in want[:5]]
