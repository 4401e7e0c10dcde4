"""Indexes kept up to date incrementally: merged successors, carried coverage, tail logs, automatic upkeep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import hybrid
from hybrid.index import coverage
from hybrid.index.upkeep import Upkeep, plan_tiers, upkeep_lock

DIM = 16
WORDS = [f"w{i}" for i in range(300)]


def _rows(rng: np.random.Generator, start: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "id": start + i,
            "text": " ".join(rng.choice(WORDS, 8)) + f" tok{start + i}x",
            "vector": rng.standard_normal(DIM).astype(np.float32).tolist(),
        }
        for i in range(n)
    ]


def _table(path: Path, n: int = 2_000, upkeep: Upkeep | None = None) -> tuple[hybrid.Table, np.random.Generator]:
    rng = np.random.default_rng(7)
    t = hybrid.connect(path, upkeep=upkeep).create_table("docs", _rows(rng, 0, n))
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="l2", ef_search=200)
    return t, rng


def _exact_top(t: hybrid.Table, q: np.ndarray, k: int) -> list[int]:
    data = t.to_arrow(["id", "vector"])
    vectors = np.array(data.column("vector").to_pylist(), dtype=np.float32)
    d = ((vectors - q) ** 2).sum(axis=1)
    return [data.column("id")[int(i)].as_py() for i in np.argsort(d, kind="stable")[:k]]


def test_optimize_merges_into_a_copy_and_keeps_the_old_version_searchable(tmp_path: Path) -> None:
    t, rng = _table(tmp_path)
    before = t.version
    t.add(_rows(rng, 2_000, 200))
    t.delete("id < 100")
    commits = t.optimize()
    assert [c.operation for c in commits] == ["merge_index", "merge_index"]
    stats = {s["name"]: s for s in t.index_stats()}
    for s in stats.values():
        assert (s["dead_rows"], s["unindexed_rows"], s["live_indexed_rows"]) == (0, 0, 2_100), s
        assert s["merges"] == 1
    assert stats["vector:vector"]["deleted_nodes"] == 100
    # deleted rows never come back; new rows are found through the merged indexes alone
    for i in (0, 50, 99):
        assert t.search(f"tok{i}x").to_arrow().num_rows == 0
    for i in (2_000, 2_150, 2_199):
        assert t.search(f"tok{i}x").to_list()[0]["id"] == i
    plan = t.search("tok2150x").explain()
    assert "[0 unindexed, 0 dead rows]" in plan
    # vector recall of the merged graph against exact search over the live rows
    hits = 0
    for _ in range(30):
        q = rng.standard_normal(DIM).astype(np.float32)
        got = [r["id"] for r in t.search(q, vector_column="vector").limit(10).to_list()]
        hits += len(set(got) & set(_exact_top(t, q, 10)))
    assert hits / 300 >= 0.97
    # the version before the writes still searches with its own (unmerged) index and rows
    old = t.checkout(before)
    assert old.search("tok50x").to_list()[0]["id"] == 50
    assert old.search("tok2150x").to_arrow().num_rows == 0


def test_merged_bm25_ranks_like_a_rebuilt_index(tmp_path: Path) -> None:
    t, rng = _table(tmp_path)
    t.add(_rows(rng, 2_000, 300))
    t.delete("id % 10 = 0")
    t.optimize()
    merged = {w: [r["id"] for r in t.search(f"{w} w1").limit(10).to_list()] for w in WORDS[:40]}
    t.optimize(rebuild=True)
    assert {s["name"]: s.get("merges") for s in t.index_stats()} == {"fts": None, "vector:vector": None}
    overlap = [len(set(merged[w]) & {r["id"] for r in t.search(f"{w} w1").limit(10).to_list()}) for w in merged]
    assert sum(overlap) / (10 * len(overlap)) >= 0.9


def test_a_graph_with_many_deleted_nodes_is_rebuilt(tmp_path: Path) -> None:
    t, _ = _table(tmp_path, n=500)
    t.delete("id < 150")  # 30% of the graph
    t.optimize()
    vector = next(s for s in t.index_stats() if s["kind"] == "vector")
    assert "merges" not in vector and "deleted_nodes" not in vector
    assert vector["indexed_rows"] == 350


@pytest.mark.parametrize("seed", range(4))
def test_carried_coverage_equals_coverage_from_scratch(tmp_path: Path, seed: int) -> None:
    t, rng = _table(tmp_path / str(seed), n=300)
    ops = np.random.default_rng(seed)
    for step in range(25):
        kind = ops.choice(["add", "delete", "update", "compact", "optimize"], p=[0.4, 0.2, 0.2, 0.1, 0.1])
        if kind == "add":
            t.add(_rows(rng, 10_000 + step * 10, int(ops.integers(1, 8))))
        elif kind == "delete":
            t.delete(f"id % 17 = {int(ops.integers(0, 17))}")
        elif kind == "update":
            t.update(f"id % 23 = {int(ops.integers(0, 23))}", {"text": f"rewritten {step}"})
        elif kind == "compact":
            t.compact()
        else:
            t.optimize()
        view = t.indexed_snapshot()
        live = np.sort(t.to_arrow(with_rowid=True).column("_rowid").to_numpy())
        assert np.array_equal(view.live_ids(), live)
        for entry in view.entries():
            indexed = np.load(t.path / entry.path / "rowids.npy")
            got, want = view.coverage(entry), coverage.compute(indexed, live)
            assert np.array_equal(got.dead, want.dead) and np.array_equal(got.unindexed, want.unindexed), (kind, step)
            assert got.live == len(live)


def test_upkeep_compacts_small_fragments_and_merges_indexes_in_the_background(tmp_path: Path) -> None:
    t, rng = _table(tmp_path, n=500, upkeep=Upkeep(merge_rows=40, merge_share=0.0, tier_fragments=4))
    for i in range(60):
        t.add(_rows(rng, 1_000 + i, 1))
        assert t.search(f"tok{1_000 + i}x").to_list()[0]["id"] == 1_000 + i  # fresh rows are found at once
    t.wait_for_upkeep()
    ops = [v.operation for v in t.versions()]
    assert "compact" in ops and "merge_index" in ops
    manifest = t.snapshot().manifest
    assert len(manifest.fragments) < 20  # 61 fragments without upkeep
    assert not plan_tiers(manifest, 4) or t.version != manifest.version
    for s in t.index_stats():
        assert s["unindexed_rows"] < 40, s
    assert t.count_rows() == 560
    assert sorted(t.to_arrow(["id"]).column("id").to_pylist()) == list(range(500)) + list(range(1_000, 1_060))


def test_upkeep_off_writes_nothing_by_itself(tmp_path: Path) -> None:
    t, rng = _table(tmp_path, n=200, upkeep=None)
    for i in range(40):
        t.add(_rows(rng, 1_000 + i, 1))
    t.wait_for_upkeep()
    assert {v.operation for v in t.versions()} == {"create", "create_index", "append"}
    assert len(t.snapshot().manifest.fragments) == 41


def test_background_upkeep_runs_in_one_process_at_a_time(tmp_path: Path) -> None:
    t, rng = _table(tmp_path, n=200, upkeep=Upkeep(merge_rows=10, merge_share=0.0, tier_fragments=4))
    take = "import sys, fcntl; fcntl.flock(open(sys.argv[1], 'a'), fcntl.LOCK_EX | fcntl.LOCK_NB)"
    probe = [sys.executable, "-c", take]
    with upkeep_lock(t.path) as mine:  # this stands for another worker process busy with upkeep
        assert mine
        assert subprocess.run([*probe, str(t.path / ".upkeep.lock")], capture_output=True).returncode != 0
        for i in range(12):
            t.add(_rows(rng, 1_000 + i, 1))
            t.wait_for_upkeep()
        assert {v.operation for v in t.versions()} == {"create", "create_index", "append"}
    t.add(_rows(rng, 2_000, 1))  # the holder is gone: the next write's upkeep does what is due
    t.wait_for_upkeep()
    ops = [v.operation for v in t.versions()]
    assert "compact" in ops and "merge_index" in ops
    assert t.count_rows() == 213


def test_run_upkeep_beside_a_second_writer_loses_nothing(tmp_path: Path) -> None:
    t, rng = _table(tmp_path, n=300, upkeep=None)
    other = hybrid.connect(tmp_path, upkeep=None).open_table("docs")
    policy = Upkeep(merge_rows=5, merge_share=0.0, tier_fragments=2)
    for i in range(30):
        (t if i % 2 else other).add(_rows(rng, 1_000 + i, 1))
        if i % 7 == 0:
            other.delete(f"id = {i}")
        t.run_upkeep(policy)  # the writer and the upkeep interleave
    assert t.count_rows() == 300 + 30 - 5
    for i in (1_003, 1_029):
        assert t.search(f"tok{i}x").to_list()[0]["id"] == i


CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import hybrid
    from hybrid.index.upkeep import Upkeep
    path, start = sys.argv[1], int(sys.argv[2])
    policy = Upkeep(merge_rows=20, merge_share=0.0, tier_fragments=3)
    t = hybrid.connect(path, upkeep=policy).open_table("docs")
    rng = np.random.default_rng(start)
    for i in range(start, start + 10_000):
        row = {"id": i, "text": f"w1 tok{i}x", "vector": rng.standard_normal(16).astype(np.float32).tolist()}
        version = t.add([row]).version
        print(json.dumps([i, version]), flush=True)
    """
)


def test_sigkill_during_background_upkeep_loses_nothing_committed(tmp_path: Path) -> None:
    _table(tmp_path, n=300, upkeep=None)
    env = {**os.environ, "PYTHONPATH": str(Path(hybrid.__file__).parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path), "5000"], stdout=subprocess.PIPE, text=True, env=env
    )
    assert child.stdout is not None
    committed = []
    deadline = time.monotonic() + 60
    while len(committed) < 150 and time.monotonic() < deadline:  # past several compactions and merges
        line = child.stdout.readline()
        if not line:
            break
        committed.append(json.loads(line)[0])
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert len(committed) >= 150
    t = hybrid.connect(tmp_path, upkeep=None).open_table("docs")
    ids = set(t.to_arrow(["id"]).column("id").to_pylist())
    assert set(committed) <= ids
    for info in t.versions():  # every version reads and searches
        old = t.checkout(info.version)
        assert old.count_rows() == info.num_rows
        if any(s["kind"] == "fts" for s in old.index_stats()):
            assert len(old.search("w1").limit(3).to_list()) == 3
    for i in committed[-3:] + committed[:3]:
        assert t.search(f"tok{i}x").to_list()[0]["id"] == i
    assert {"compact", "merge_index"} <= {v.operation for v in t.versions()}


def test_filter_results_carried_across_versions_equal_a_fresh_evaluation(tmp_path: Path) -> None:
    from hybrid.query.allowed import allowed_rows, carried_rows
    from hybrid.query.filter import compile_filter

    t, rng = _table(tmp_path, n=400, upkeep=None)
    t.create_scalar_index("id")
    sql = "id % 3 = 0 AND text LIKE '%w1%'"
    ops = np.random.default_rng(3)
    carried = 0
    for step in range(30):
        kind = ops.choice(["add", "delete", "update", "compact"], p=[0.5, 0.2, 0.2, 0.1])
        if kind == "add":
            t.add(_rows(rng, 10_000 + 10 * step, int(ops.integers(1, 6))))
        elif kind == "delete":
            t.delete(f"id % 29 = {int(ops.integers(0, 29))}")
        elif kind == "update":
            t.update(f"id % 31 = {int(ops.integers(0, 31))}", {"text": f"w1 rewritten {step}"})
        else:
            t.compact()
        view = t.indexed_snapshot()
        flt = compile_filter(sql, view.schema)
        got = carried_rows(view, flt)
        carried += "carried" in got.how
        assert np.array_equal(got.ids, allowed_rows(view, flt).ids), (step, kind, got.how)
        hits = t.search(rng.standard_normal(DIM).astype(np.float32), vector_column="vector").where(sql).limit(500)
        assert sorted(r["_rowid"] for r in hits.to_list()) == got.ids.tolist()
    assert carried >= 25  # every step but the first is carried, except after a big rewrite


def test_upkeep_looks_again_after_a_job_that_writes_came_in_during(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Appends made while a background job ends (here: held after its work until they are done) are
    compacted by that job's next look, not left for the next write."""
    import threading

    from hybrid.index import upkeep

    t, rng = _table(tmp_path, n=100, upkeep=Upkeep(merge_rows=10_000, tier_fragments=4))
    started, release = threading.Event(), threading.Event()
    real = upkeep.run_upkeep

    def held(*args: object, **kwargs: object) -> object:
        done = real(*args, **kwargs)  # type: ignore[arg-type]
        if not started.is_set():  # the first job has done its work: writes come in before it ends
            started.set()
            assert release.wait(60)
        return done

    monkeypatch.setattr(upkeep, "run_upkeep", held)
    i = 0
    while not started.is_set() and i < 10:  # one-row fragments until a job is due (a tier of 4) and starts
        t.add(_rows(rng, 1_000 + i, 1))
        i += 1
    assert started.wait(60), "no upkeep job started"
    for j in range(i, 12):  # more one-row fragments while the job is held
        t.add(_rows(rng, 1_000 + j, 1))
    release.set()
    t.wait_for_upkeep()
    manifest = t.snapshot().manifest
    assert not plan_tiers(manifest, 4), [f.physical_rows for f in manifest.fragments]
    assert sorted(t.to_arrow(["id"]).column("id").to_pylist()) == list(range(100)) + list(range(1_000, 1_012))
