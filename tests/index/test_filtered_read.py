"""A filter's exact search over a compressed index's table reads the allowed rows from the data files
(:func:`hybrid.index.gather.read_row_vectors`): the same matrix, norms and blocks as gathering them
through the table's map, so the same distances, without leaving the table mapped in the process.

The rows are read one ``preadv`` per row, or (many rows of one chunk) through a map made and closed
for the call (:mod:`hybrid.index.row_reads`): both are checked against the map, byte for byte.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.errors import CorruptionError
from hybrid.index import row_reads
from hybrid.index.exact import row_vectors
from hybrid.index.gather import read_row_vectors
from tests.index.test_rescore_pread import _mapped_kib

pytest.importorskip("faiss")

DIM = 32


def _rows(start: int, data: np.ndarray, nulls: frozenset[int] = frozenset()) -> pa.Table:
    ids = np.arange(start, start + len(data), dtype=np.int64)
    mask = pa.array(np.array([i in nulls for i in range(len(data))]))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), data.shape[1], mask=mask)
    return pa.table({"id": pa.array(ids), "category": pa.array(ids % 100), "vector": vectors})


def _every_call(monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    """Make every `read_rows` call map its rows ("map") or read them with preadv ("preadv")."""
    monkeypatch.setattr(row_reads, "MAP_FROM", 1 if way == "map" else 10**9)
    monkeypatch.setattr(row_reads, "ROWS_PER_FAULT", 0)


@pytest.mark.parametrize("way", ["map", "preadv"])
@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_read_rows_equal_the_mapped_gather(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, metric: str, way: str
) -> None:
    _every_call(monkeypatch, way)
    rng = np.random.default_rng(3)
    data = rng.normal(size=(4_000, DIM)).astype(np.float32)
    db = hybrid.connect(tmp_path, upkeep=None)
    # two fragments, the first of two stored chunks; rows 7 and 2_500 have no vector; some rows deleted
    t = db.create_table("t", pa.concat_tables([_rows(0, data[:900], frozenset({7})), _rows(900, data[900:2_000])]))
    t.add(_rows(2_000, data[2_000:], frozenset({500})))
    t.delete("id % 37 = 0")
    view = t.indexed_snapshot()
    rowids = np.sort(t.to_arrow(["id"], with_rowid=True).column("_rowid").to_numpy()).astype(np.uint64)
    for share in (0.01, 0.3, 1.0):
        ids = np.sort(rng.choice(rowids, size=max(1, int(share * len(rowids))), replace=False))
        ids = np.union1d(ids, [rowids[-1] + 5]).astype(np.uint64)  # and a row id no row has
        want, got = row_vectors(view, "vector", ids, metric), read_row_vectors(view, "vector", ids, metric)
        assert np.array_equal(got.ids, want.ids) and np.array_equal(got.matrix, want.matrix)
        assert got.cuts == want.cuts
        assert (got.squares is None) == (want.squares is None)
        if want.squares is not None:
            assert got.squares is not None and np.array_equal(got.squares, want.squares)
        q = rng.normal(size=DIM).astype(np.float32)
        a, b = got.search(q, metric, 10), want.search(q, metric, 10)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("way", ["map", "preadv"])
def test_a_short_file_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, way: str) -> None:
    _every_call(monkeypatch, way)
    path = tmp_path / "rows.bin"
    np.arange(10 * 4, dtype=np.float32).tofile(path)  # 10 rows of 4
    fd = os.open(path, os.O_RDONLY)
    try:
        out = np.empty((2, 4), np.float32)
        row_reads.read_rows(fd, 0, np.array([3, 9]), out)
        assert out.tolist() == [[12, 13, 14, 15], [36, 37, 38, 39]]
        with pytest.raises(CorruptionError, match="ended early"):
            row_reads.read_rows(fd, 0, np.array([3, 10]), out)  # row 10 is past the end
    finally:
        os.close(fd)


def test_dense_rows_are_mapped_and_sparse_ones_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call maps its rows when there are `MAP_FROM` or more, two or more per 64 KiB of their span."""
    path = tmp_path / "rows.bin"
    rows = np.arange(4_000 * 384, dtype=np.float32).reshape(4_000, 384)  # 1,536 bytes a row
    rows.tofile(path)
    mapped: list[int] = []
    real = row_reads._mapped_rows
    monkeypatch.setattr(
        row_reads, "_mapped_rows", lambda fd, at, pos, out: (mapped.append(len(pos)), real(fd, at, pos, out))
    )
    fd = os.open(path, os.O_RDONLY)
    try:
        for pos in (np.arange(0, 4_000, 20), np.arange(0, 4_000, 25), np.arange(0, 20 * 30, 20)):
            out = np.empty((len(pos), 384), np.float32)
            row_reads.read_rows(fd, 0, pos, out)
            assert np.array_equal(out, rows[pos])
    finally:
        os.close(fd)
    # every 20th row: 200 rows, 2.1 per 64 KiB (mapped); every 25th: 1.7 (read); 30 rows: fewer than
    # MAP_FROM (read)
    assert mapped == [200]


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
@pytest.mark.parametrize("kind", ["ivf_pq", "hnsw_int8"])
def test_filtered_exact_search_leaves_the_table_unmapped(tmp_path: Path, kind: str) -> None:
    """1%-filtered searches (exact over the allowed rows) of a compressed index's table add almost none
    of it to the process's resident maps, and return the exact nearest allowed rows and distances. On
    the map (before), the first searches mapped most of the vectors: each allowed row's fault maps the
    64 KiB around it, and the cached per-chunk norms read every row."""
    n, dim = 10_000, 128
    rng = np.random.default_rng(5)
    data = rng.normal(size=(n, dim)).astype(np.float32)
    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", _rows(0, data))
    t.create_vector_index("vector", kind=kind)
    t.create_scalar_index("category")
    t = hybrid.connect(tmp_path, upkeep=None).open_table("t")  # maps of its own: none of the build's pages
    before = _mapped_kib(tmp_path)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    for i, q in enumerate(rng.normal(size=(60, dim)).astype(np.float32)):
        search = t.search(q, vector_column="vector").where(f"category = {i}").select(["id"]).limit(10)
        if i == 0:
            assert "exact over 100 allowed rows" in search.explain()
        got = search.to_arrow()
        allowed = np.flatnonzero(np.arange(n) % 100 == i)
        d = 1.0 - unit[allowed] @ (q / np.linalg.norm(q))
        order = np.argsort(d, kind="stable")[:10]
        assert got.column("id").to_pylist() == allowed[order].tolist()
        assert np.allclose(got.column("_distance").to_numpy(), d[order], atol=1e-6)
    added = _mapped_kib(tmp_path) - before  # the result columns' pages (ids) are mapped as before
    assert added < n * dim * 4 // 1024 // 10, added  # measured 168 KiB of 5,000; on the map 5,264
