"""Rescoring reads the candidates' vectors with pread: the same exact distances as reading them through
the table's memory map, without leaving the table's pages mapped in the serving process (a fault on the
map maps the whole page-cache folio around the row, so a map read a few hundred times held most of the
table resident)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.index import gather

pytest.importorskip("faiss")

N, DIM = 20_000, 64


def _table(path: Path) -> tuple[hybrid.Table, np.ndarray]:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(N, DIM)).astype(np.float32)
    rows = pa.table({
        "id": pa.array(np.arange(N, dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), DIM),
    })  # fmt: skip
    t = hybrid.connect(path, upkeep=None).create_table("t", rows)
    t.create_vector_index("vector", kind="ivf_pq", rescore=16)
    return t, data


def _mapped_kib(folder: Path) -> int:
    """Resident KiB of this process's maps of the data files under `folder` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            inside = len(head) >= 6 and head[5].startswith(str(folder)) and "/data/" in head[5]
        elif inside and line.startswith("Rss:"):
            total += int(head[1])
    return total


def _searches(t: hybrid.Table, queries: np.ndarray) -> list[tuple[list[int], list[float]]]:
    out = []
    for q in queries:
        got = t.search(q, vector_column="vector").select(["id"]).limit(10).to_arrow()
        out.append((got.column("id").to_pylist(), got.column("_distance").to_pylist()))
    return out


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux's /proc/self/smaps")
def test_pread_leaves_the_table_unmapped_and_scores_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    queries = rng.normal(size=(150, DIM)).astype(np.float32)
    table_bytes = N * DIM * 4 // 1024
    results = {}
    for read_rows in (True, False):
        monkeypatch.setattr(gather, "READ_ROWS", read_rows)
        t, _ = _table(tmp_path / str(read_rows))
        before = _mapped_kib(tmp_path / str(read_rows))
        results[read_rows] = _searches(t, queries)
        added = _mapped_kib(tmp_path / str(read_rows)) - before
        if read_rows:
            assert added < table_bytes // 20, (added, table_bytes)
        else:  # the map: most of the vectors' pages stay mapped
            assert added > table_bytes // 2, (added, table_bytes)
    assert results[True] == results[False]


def test_an_encrypted_table_rescores_from_its_decrypted_copy(tmp_path: Path) -> None:
    """An encrypted data file's bytes on disk are ciphertext: rescoring reads the decrypted copy, and the
    distances are the exact ones."""
    import os

    rng = np.random.default_rng(6)
    data = rng.normal(size=(3_000, DIM)).astype(np.float32)
    rows = pa.table({
        "id": pa.array(np.arange(len(data), dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), DIM),
    })  # fmt: skip
    t = hybrid.connect(tmp_path, upkeep=None, encryption_key=os.urandom(32)).create_table("t", rows)
    t.create_vector_index("vector", kind="ivf_pq")
    for i in (0, 17, 2_999):
        got = t.search(data[i], vector_column="vector").select(["id"]).limit(3).to_arrow()
        assert got.column("id")[0].as_py() == i and abs(got.column("_distance")[0].as_py()) < 1e-5
