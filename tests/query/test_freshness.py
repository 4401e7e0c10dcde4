"""Stateful property test: search stays correct while the table changes under its indexes.

A hypothesis ``RuleBasedStateMachine`` drives one table with a full-text index
(on ``text``) and an HNSW index (l2, on ``vector``) through random add /
update / delete / compact / optimize (a merge) / rebuild / upkeep steps (upkeep:
small-fragment compaction and index merges past random thresholds), and searches
in between. A model
keeps ``id -> (text, vector)`` and, per index, the row ids it was built over.

Every search checks that

* every returned ``_rowid`` is live in the current version (never a deleted
  row, nor the old row id of an updated row), and the returned row's content
  is the model's;
* vector search with a stored row's own vector returns, first, a live row at
  distance 0 holding that vector (the row itself or a duplicate), and, when k
  allows, every live duplicate;
* text search for the unique token planted in one row returns exactly that
  row, also right after an update (new row id, not yet indexed); the token of
  a deleted or rewritten row version finds nothing;
* a hybrid search with both ranks the row first;
* a broad query returns min(k, live rows) rows, best first;
* an earlier version (``checkout``, sharing the table's search caches, so its
  per-version state of unindexed rows sits beside the newest version's) still
  finds its own rows by token and by vector, with its own row ids and content,
  and never a row written after it.

After every step ``index_stats()`` must report, for each index, the rows it
holds, how many of them are dead, and how many live rows it lacks; after
``optimize()`` both counts are zero.

The default test is sized for CI; the ``slow`` variant runs many more and
longer sequences (``pytest -m slow tests/query/test_freshness.py``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import hybrid
from hybrid.index.upkeep import Upkeep, due_indexes, plan_tiers

DIM = 4
# vectors on a tiny integer grid: duplicates (distance 0) happen often, distances are exact in float32
VECTOR = st.lists(st.integers(0, 2), min_size=DIM, max_size=DIM).map(lambda v: [float(x) for x in v])
FTS, VEC = "fts", "vector:vector"


class FreshnessMachine(RuleBasedStateMachine):
    VECTOR_KIND = "hnsw"
    """The vector index kind (tests/index/test_ann_kinds.py runs this machine over every kind)."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="freshness-"))
        self.t: hybrid.Table | None = None
        self.model: dict[int, dict[str, Any]] = {}  # id -> {"text", "vector", "token"}
        self.rowid: dict[int, int] = {}  # id -> its current row id
        self.indexed: dict[str, set[int]] = {FTS: set(), VEC: set()}  # row ids each index was built over
        self.next_id = 0
        self.next_token = 0
        self.retired_tokens: list[str] = []  # tokens of deleted or rewritten row versions
        self.history: dict[int, tuple[dict[int, dict[str, Any]], dict[int, int]]] = {}  # version -> (model, rowid)

    def teardown(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # -- helpers --------------------------------------------------------------------------------

    def _token(self) -> str:
        self.next_token += 1
        return f"uq{self.next_token}x"

    def _new_row(self, vector: list[float]) -> dict[str, Any]:
        i, token = self.next_id, self._token()
        self.next_id += 1
        self.model[i] = {"text": f"common {token} filler{i % 3}", "vector": vector, "token": token}
        return {"id": i, **{k: self.model[i][k] for k in ("text", "vector")}}

    def _refresh_rowids(self) -> None:
        assert self.t is not None
        live = self.t.to_arrow(["id"], with_rowid=True)
        self.rowid = dict(zip(live.column("id").to_pylist(), live.column("_rowid").to_pylist()))
        assert set(self.rowid) == set(self.model)
        self.history[self.t.version] = ({i: dict(m) for i, m in self.model.items()}, dict(self.rowid))
        while len(self.history) > 8:
            self.history.pop(min(self.history))

    def _live_rowids(self) -> set[int]:
        return set(self.rowid.values())

    def _check_rows(self, result: Any) -> list[dict[str, Any]]:
        """Every returned row is live and holds the model's content."""
        rows = result.to_pylist()
        for r in rows:
            assert r["id"] in self.model, f"returned deleted id {r['id']}"
            assert r["_rowid"] == self.rowid[r["id"]], f"returned dead row id {r['_rowid']} of id {r['id']}"
            assert r["text"] == self.model[r["id"]]["text"]
            assert r["vector"] == self.model[r["id"]]["vector"]
        assert len({r["_rowid"] for r in rows}) == len(rows), "a row id returned twice"
        return rows

    def _pick(self, index: int) -> int:
        ids = sorted(self.model)
        return ids[index % len(ids)]

    # -- setup and writes ---------------------------------------------------------------------------

    @initialize(vectors=st.lists(VECTOR, min_size=1, max_size=12))
    def create(self, vectors: list[list[float]]) -> None:
        rows = [self._new_row(v) for v in vectors]
        self.t = hybrid.connect(self.folder, upkeep=None).create_table("docs", rows)  # upkeep: a rule below
        self.t.create_fts_index(["text"])
        self.t.create_vector_index("vector", metric="l2", kind=self.VECTOR_KIND)  # type: ignore[arg-type]
        self._refresh_rowids()
        self.indexed = {FTS: self._live_rowids(), VEC: self._live_rowids()}

    @rule(vectors=st.lists(VECTOR, min_size=1, max_size=6))
    def add(self, vectors: list[list[float]]) -> None:
        assert self.t is not None
        self.t.add([self._new_row(v) for v in vectors])
        self._refresh_rowids()

    @precondition(lambda self: self.model)
    @rule(which=st.integers(0, 10_000), new_text=st.booleans(), new_vector=st.none() | VECTOR)
    def update(self, which: int, new_text: bool, new_vector: list[float] | None) -> None:
        assert self.t is not None
        i = self._pick(which)
        values: dict[str, Any] = {}
        if new_text or new_vector is None:  # always change something
            self.retired_tokens.append(self.model[i]["token"])
            token = self._token()
            self.model[i].update(text=f"common {token} filler{i % 3} updated", token=token)
            values["text"] = self.model[i]["text"]
        if new_vector is not None:
            self.model[i]["vector"] = new_vector
            values["vector"] = new_vector
        old = self.rowid[i]
        commit = self.t.update(f"id = {i}", values)
        assert commit.updated == 1
        self._refresh_rowids()
        assert self.rowid[i] != old  # an updated row gets a new row id

    @precondition(lambda self: self.model)
    @rule(picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=4), everything=st.booleans())
    def delete(self, picks: list[int], everything: bool) -> None:
        assert self.t is not None
        ids = sorted(self.model) if everything and len(picks) == 1 else sorted({self._pick(p) for p in picks})
        commit = self.t.delete(f"id IN ({', '.join(map(str, ids))})")
        assert commit.deleted == len(ids)
        for i in ids:
            self.retired_tokens.append(self.model.pop(i)["token"])
        self._refresh_rowids()

    @rule()
    def compact(self) -> None:
        assert self.t is not None
        before = dict(self.rowid)
        self.t.compact()
        self._refresh_rowids()
        assert self.rowid == before  # compaction keeps row ids

    @rule()
    def optimize(self) -> None:
        assert self.t is not None
        live = self._live_rowids()
        stale = sum(1 for s in self.indexed.values() if s != live)
        commits = self.t.optimize()
        assert len(commits) == stale  # only indexes with dead or unindexed rows are rebuilt
        self.indexed = {FTS: set(live), VEC: set(live)}
        for s in self.t.index_stats():
            assert (s["dead_rows"], s["unindexed_rows"], s["indexed_rows"]) == (0, 0, len(live)), s

    @rule(merge_rows=st.integers(1, 8), tier_fragments=st.integers(2, 4))
    def upkeep(self, merge_rows: int, tier_fragments: int) -> None:
        """One round of automatic upkeep, run here (not in the background) so the model can follow it."""
        assert self.t is not None
        before = dict(self.rowid)
        policy = Upkeep(merge_rows=merge_rows, merge_share=0.0, tier_fragments=tier_fragments)
        due = {e.name for e in due_indexes(self.t.indexed_snapshot(), policy)}
        self.t.run_upkeep(policy)
        self._refresh_rowids()
        assert self.rowid == before  # compaction keeps row ids
        live = self._live_rowids()
        for name in due:
            self.indexed[name] = set(live)
        assert not plan_tiers(self.t.snapshot().manifest, tier_fragments)

    @rule()
    def rebuild(self) -> None:
        assert self.t is not None
        self.t.optimize(rebuild=True)
        live = self._live_rowids()
        self.indexed = {FTS: set(live), VEC: set(live)}
        for s in self.t.index_stats():
            assert "merges" not in s, s

    # -- searches ------------------------------------------------------------------------------------

    @precondition(lambda self: self.model)
    @rule(which=st.integers(0, 10_000), k=st.integers(1, 12), filtered=st.booleans())
    def search_vector(self, which: int, k: int, filtered: bool) -> None:
        assert self.t is not None
        i = self._pick(which)
        v = self.model[i]["vector"]
        q = self.t.search(v, vector_column="vector").limit(k)
        if filtered:
            q = q.where("id >= 0")  # allows every row: same answer through the prefilter path
        rows = self._check_rows(q.to_arrow())
        assert len(rows) == min(k, len(self.model))
        top = rows[0]
        assert top["_distance"] == 0.0 and top["vector"] == v, (i, top)
        duplicates = {j for j, m in self.model.items() if m["vector"] == v}
        at_zero = {r["id"] for r in rows if r["_distance"] == 0.0}
        assert at_zero <= duplicates
        if k >= len(duplicates):
            assert at_zero == duplicates
        distances = [r["_distance"] for r in rows]
        assert distances == sorted(distances)

    @precondition(lambda self: self.model)
    @rule(which=st.integers(0, 10_000), filtered=st.booleans())
    def search_text(self, which: int, filtered: bool) -> None:
        assert self.t is not None
        i = self._pick(which)
        q = self.t.search(self.model[i]["token"]).limit(5)
        if filtered:
            q = q.where(f"id <= {i}")
        rows = self._check_rows(q.to_arrow())
        assert [r["id"] for r in rows] == [i]
        assert rows[0]["_bm25"] > 0

    @rule(picks=st.lists(st.tuples(st.sampled_from([0, 5, 10, 20, 40]), st.booleans()), min_size=1, max_size=4))
    def filter_rows(self, picks: list[tuple[int, bool]]) -> None:
        """Filters' allowed rows, each carried from whichever version it last ran on (filters carried to one
        version share one check of the rows added since, in whatever order they come): exactly the live
        rows that satisfy each."""
        assert self.t is not None
        from hybrid.query.allowed import cached_allowed
        from hybrid.query.filter import compile_filter

        view = self.t.indexed_snapshot()
        for threshold, below in picks:
            sql = f"id < {threshold}" if below else f"id >= {threshold}"
            got = cached_allowed(view, compile_filter(sql, view.schema)).ids
            ids = view.snapshot.take(got, ["id"]).column("id").to_pylist() if len(got) else []
            assert sorted(ids) == sorted(i for i in self.model if (i < threshold) == below), sql

    @precondition(lambda self: self.retired_tokens)
    @rule(which=st.integers(0, 10_000))
    def search_retired_token(self, which: int) -> None:
        assert self.t is not None
        token = self.retired_tokens[which % len(self.retired_tokens)]
        assert self.t.search(token).limit(5).to_arrow().num_rows == 0, token

    @precondition(lambda self: self.model)
    @rule(which=st.integers(0, 10_000))
    def search_hybrid(self, which: int) -> None:
        assert self.t is not None
        i = self._pick(which)
        q = self.t.search(self.model[i]["token"]).vector(self.model[i]["vector"], column="vector").limit(5)
        rows = self._check_rows(q.to_arrow())
        assert rows[0]["id"] == i and rows[0]["_fts_rank"] == 1 and rows[0]["_distance"] == 0.0

    @rule(k=st.integers(1, 40))
    def search_broad(self, k: int) -> None:
        assert self.t is not None
        text = self._check_rows(self.t.search("common").limit(k).to_arrow())
        assert len(text) == min(k, len(self.model))
        bm25 = [r["_bm25"] for r in text]
        assert bm25 == sorted(bm25, reverse=True)
        vec = self._check_rows(self.t.search([1.0] * DIM, vector_column="vector").limit(k).to_arrow())
        assert len(vec) == min(k, len(self.model))
        want = sorted(float(np.sum((np.array(m["vector"]) - 1.0) ** 2)) for m in self.model.values())[:k]
        assert [r["_distance"] for r in vec] == want  # the exact k nearest distances

    @precondition(lambda self: len(self.history) > 1)
    @rule(pick_version=st.integers(0, 10_000), which=st.integers(0, 10_000))
    def search_old_version(self, pick_version: int, which: int) -> None:
        """An earlier version searches with what it had: its own rows, by token and by vector."""
        assert self.t is not None
        versions = sorted(self.history)
        version = versions[pick_version % len(versions)]
        model, rowid = self.history[version]
        old = self.t.checkout(version)
        if not model:
            assert old.search("common").limit(5).to_arrow().num_rows == 0
            return
        i = sorted(model)[which % len(model)]
        text = old.search(model[i]["token"]).limit(5).to_arrow().to_pylist()
        assert [(r["id"], r["_rowid"], r["text"]) for r in text] == [(i, rowid[i], model[i]["text"])], version
        v = model[i]["vector"]
        rows = old.search(v, vector_column="vector").limit(3).to_arrow().to_pylist()
        assert rows and rows[0]["_distance"] == 0.0 and rows[0]["vector"] == v, (version, i, rows[:1])
        for r in rows:  # only rows of that version, as they were then
            assert r["id"] in model and r["_rowid"] == rowid[r["id"]], (version, r["id"])
            assert (r["text"], r["vector"]) == (model[r["id"]]["text"], model[r["id"]]["vector"])
        assert len(rows) == min(3, len(model))

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def index_stats_match_model(self) -> None:
        if self.t is None:
            return
        live = self._live_rowids()
        assert self.t.count_rows() == len(self.model)
        stats = {s["name"]: s for s in self.t.index_stats()}
        assert set(stats) == {FTS, VEC}
        for name, indexed in self.indexed.items():
            s = stats[name]
            got = (s["indexed_rows"], s["live_indexed_rows"], s["dead_rows"], s["unindexed_rows"])
            want = (len(indexed), len(indexed & live), len(indexed - live), len(live - indexed))
            assert got == want, (name, got, want)
            assert s["table_version"] == self.t.version


_SETTINGS: dict[str, Any] = dict(
    deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def test_search_freshness() -> None:
    run_state_machine_as_test(FreshnessMachine, settings=settings(max_examples=25, stateful_step_count=20, **_SETTINGS))


@pytest.mark.slow
def test_search_freshness_long() -> None:
    run_state_machine_as_test(
        FreshnessMachine, settings=settings(max_examples=200, stateful_step_count=40, **_SETTINGS)
    )


# -- a focused case the state machine does not generate --------------------------------------------


def test_null_vectors_are_not_unindexed(tmp_path: Path) -> None:
    rows = [{"id": i, "text": f"w{i}", "vector": None if i % 3 == 0 else [float(i), 1.0]} for i in range(9)]
    t = hybrid.connect(tmp_path).create_table("nulls", rows)
    t.create_vector_index(metric="l2")
    [s] = t.index_stats()
    assert (s["indexed_rows"], s["dead_rows"], s["unindexed_rows"]) == (6, 0, 0)
    assert t.optimize() == []


def test_many_dead_rows_are_skipped_during_the_graph_walk(tmp_path: Path) -> None:
    """Dead rows are over-fetched past (no filter callback during the walk); the result stays exact."""
    rng = np.random.default_rng(5)
    n = 3000
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    rows = [{"id": i, "text": f"common tok{i}x", "vector": vectors[i].tolist()} for i in range(n)]
    t = hybrid.connect(tmp_path, upkeep=None).create_table("many", rows)  # keep the dead rows unmerged
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="l2")
    t.delete("id % 2 = 0")  # 1500 dead
    t.update("id < 200", {"text": "common rewritten"})  # 100 more dead, 100 unindexed
    stats = {s["name"]: s for s in t.index_stats()}
    assert (stats["vector:vector"]["dead_rows"], stats["vector:vector"]["unindexed_rows"]) == (1600, 100)
    assert (stats["fts"]["dead_rows"], stats["fts"]["unindexed_rows"]) == (1600, 100)
    live = set(t.to_arrow(with_rowid=True).column("_rowid").to_pylist())
    assert "skipping 1600 dead rows" in executor_strategy(t, vectors[1])
    for i in (1, 3, 101, 2999, 0, 2):  # odd ids are live (the first two updated), even ids deleted
        result = t.search(vectors[i], vector_column="vector").limit(10).to_arrow()
        assert set(result.column("_rowid").to_pylist()) <= live
        d = ((vectors[1::2] - vectors[i]) ** 2).sum(axis=1)  # exact, over live rows only
        assert result.column("_distance").to_pylist() == pytest.approx(np.sort(d)[:10].tolist(), rel=1e-4, abs=1e-4)
        if i % 2:
            assert result.column("id").to_pylist()[0] == i
        text = t.search(f"tok{i}x").to_arrow()
        assert text.column("id").to_pylist() == ([i] if i % 2 and i >= 200 else [])
    broad = t.search("common").limit(2000).to_arrow()
    assert broad.num_rows == 1500 and set(broad.column("_rowid").to_pylist()) == live


def executor_strategy(t: hybrid.Table, v: np.ndarray) -> str:
    """The plan of a plain vector search, which names the strategy the executor used."""
    return t.search(v, vector_column="vector").limit(10).explain()
