"""hybrid.index.hnsw_file reads hnswlib's own index file into exactly the graph ``load_index`` gives."""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np
import pytest

from hybrid.errors import CorruptionError
from hybrid.index import hnsw_file

DIM = 16


def _saved(path: Path, space: str, n: int, deleted: range = range(0)) -> Path:
    rng = np.random.default_rng(7)
    hnsw = hnswlib.Index(space=space, dim=DIM)
    hnsw.init_index(max_elements=max(1, n), ef_construction=64, M=8, random_seed=100)
    if n:
        hnsw.add_items(rng.random((n, DIM), dtype=np.float32), np.arange(10, 10 + n, dtype=np.uint64), num_threads=1)
    for label in deleted:
        hnsw.mark_deleted(label)
    file = path / "hnsw.bin"
    hnsw.save_index(str(file))
    return file


def _reference(file: Path, space: str, extra: int = 0) -> hnswlib.Index:
    hnsw = hnswlib.Index(space=space, dim=DIM)
    hnsw.load_index(str(file))
    if extra:
        hnsw.resize_index(hnsw.get_current_count() + extra)
    hnsw.set_ef(50)
    return hnsw


def _graph(hnsw: hnswlib.Index) -> dict[str, object]:
    """The parts of an index's state that decide every search (allocation sizes and seeds left out)."""
    state = hnsw.__getstate__()[0]
    count = state["cur_element_count"]
    order = np.argsort(state["label_lookup_internal"])
    graph = {k: v for k, v in state.items() if k not in ("seed", "max_elements", "num_threads") and "label" not in k}
    graph["element_levels"] = state["element_levels"][:count]
    graph["labels"] = state["label_lookup_external"][order]
    return graph


def _assert_same(a: hnswlib.Index, b: hnswlib.Index) -> None:
    ga, gb = _graph(a), _graph(b)
    assert ga.keys() == gb.keys()
    for key in ga:
        if isinstance(ga[key], np.ndarray):
            assert np.array_equal(ga[key], gb[key]), key  # type: ignore[arg-type]
        else:
            assert ga[key] == gb[key], key


@pytest.mark.parametrize("space", ["cosine", "l2", "ip"])
def test_load_gives_the_graph_load_index_gives(tmp_path: Path, space: str) -> None:
    file = _saved(tmp_path, space, 3000, deleted=range(10, 400, 7))
    mine, ref = hnsw_file.load(file, space, DIM, 50), _reference(file, space)
    _assert_same(mine, ref)
    assert mine.get_current_count() == 3000
    queries = np.random.default_rng(1).random((50, DIM), dtype=np.float32)
    labels, dist = mine.knn_query(queries, k=10)
    want_labels, want_dist = ref.knn_query(queries, k=10)
    assert np.array_equal(labels, want_labels) and np.array_equal(dist, want_dist)
    assert not set(range(10, 400, 7)) & set(labels.ravel().tolist())  # deleted marks survive the load


def test_rows_added_after_load_build_the_same_graph(tmp_path: Path) -> None:
    """`extra` leaves room for the merge's rows, and they land where they land after load_index + resize."""
    file = _saved(tmp_path, "cosine", 2000)
    add = np.random.default_rng(2).random((300, DIM), dtype=np.float32)
    ids = np.arange(5000, 5300, dtype=np.uint64)
    mine, ref = hnsw_file.load(file, "cosine", DIM, 50, extra=300), _reference(file, "cosine", extra=300)
    mine.add_items(add, ids, num_threads=1)
    ref.add_items(add, ids, num_threads=1)
    _assert_same(mine, ref)
    assert mine.get_max_elements() == 2300


def test_empty_index(tmp_path: Path) -> None:
    file = _saved(tmp_path, "l2", 0)
    hnsw = hnsw_file.load(file, "l2", DIM, 50, extra=5)
    assert hnsw.get_current_count() == 0
    hnsw.add_items(np.ones((5, DIM), np.float32), np.arange(5, dtype=np.uint64))
    assert hnsw.knn_query(np.ones(DIM, np.float32), k=1)[0][0][0] in range(5)


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:50],  # shorter than the header
        lambda data: data[:-6],  # cut inside the link section
        lambda data: data + b"\x01\x00\x00\x00",  # one element more than the header says
    ],
)
def test_damaged_file_is_a_corruption_error(tmp_path: Path, damage: object) -> None:
    file = _saved(tmp_path, "l2", 500)
    file.write_bytes(damage(file.read_bytes()))  # type: ignore[operator]
    with pytest.raises(CorruptionError, match="hnsw.bin"):
        hnsw_file.load(file, "l2", DIM, 50)


def test_wrong_dimension_is_a_corruption_error(tmp_path: Path) -> None:
    file = _saved(tmp_path, "l2", 100)
    with pytest.raises(CorruptionError, match="8-d"):
        hnsw_file.load(file, "l2", 8, 50)


def test_a_merge_keeps_its_graph_and_a_fresh_process_finds_the_same(tmp_path: Path) -> None:
    """The merging table searches the merged graph it holds (no reload from disk); a table opened
    afresh loads the merged folder through this module and returns the very same rows and distances."""
    import hybrid
    from hybrid.index.vector import VectorIndex

    rng = np.random.default_rng(3)

    def rows(ids: range) -> list[dict[str, object]]:
        return [{"id": i, "vector": rng.random(DIM, dtype=np.float32).tolist()} for i in ids]

    table = hybrid.connect(tmp_path, upkeep=None).create_table("t", rows(range(1500)))
    table.create_vector_index()
    table.add(rows(range(1500, 1800)))
    table.delete("id < 40")
    [commit] = table.optimize()
    assert commit.operation == "merge_index"
    [path] = [d["path"] for d in table._manifest().indexes]
    held = table._search.loaded[path]  # put there by the merge itself
    assert isinstance(held, VectorIndex) and held.count == 1800

    fresh = hybrid.connect(tmp_path).open_table("t")
    for q in rng.random((20, DIM), dtype=np.float32):
        mine = table.search(q).limit(10).to_arrow().select(["id", "_distance"])
        theirs = fresh.search(q).limit(10).to_arrow().select(["id", "_distance"])
        assert mine.equals(theirs)
        assert min(mine["id"].to_pylist()) >= 40  # deleted rows stay out
    assert fresh._search.loaded[path] is not held
