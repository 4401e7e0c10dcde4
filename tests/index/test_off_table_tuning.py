"""target_recall holds for queries that are not rows: the tuning also searches off-table probes.

On the 5,000 64-d rows in 20 clusters of ``test_ann_tuning_held_out.py``, the queries here are fresh
cluster draws moved off the table by Gaussian noise (0.7 per dimension: a norm of about 5.6 against
about 4 for the rows' own spread around their centre). Tuned on held-out rows alone, the float HNSW
chose ef 24 and these queries saw recall@10 0.883 against the 0.95 asked (int8 HNSW: ef 16, 0.951);
tuned on the rows and their probes (:func:`hybrid.index.tuning.off_table`), ef 48 and 0.961 (int8
HNSW: ef 48, 0.966).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.index import quantized, vector
from hybrid.index.tuning import off_table, reaches_both
from tests.index.test_ann_tuning_held_out import _data, _fresh_recall

N, DIM, TARGET, NOISE = 5_000, 64, 0.95, 0.7


def _off_table_queries() -> tuple[np.ndarray, np.ndarray]:
    data, fresh = _data()
    rng = np.random.default_rng(11)
    return data, (fresh + NOISE * rng.standard_normal(fresh.shape)).astype(np.float32)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw_int8"])
def test_the_tuned_setting_reaches_the_target_for_off_table_queries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    if kind == "hnsw_int8":
        pytest.importorskip("usearch")
        monkeypatch.setattr(quantized, "_threads", lambda rows: 1)  # the same graph every run
    else:
        monkeypatch.setattr(vector, "BUILD_THREADS", 1)  # the same graph every run
    data, queries = _off_table_queries()
    rows = pa.table({
        "id": pa.array(np.arange(N, dtype=np.int64)),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(data.ravel()), DIM),
    })  # fmt: skip
    t = hybrid.connect(tmp_path, upkeep=None).create_table("t", rows)
    t.create_vector_index("vector", kind=kind, target_recall=TARGET, m=8, ef_construction=32)
    stats = t.index_stats()[0]
    assert stats["measured_recall"] >= TARGET, stats
    assert _fresh_recall(t, data, queries) >= TARGET, stats


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_a_probe_lies_as_far_from_its_row_as_the_row_from_its_nearest(metric: str) -> None:
    rng = np.random.default_rng(5)  # not off_table's seed (0): its noise would be these rows
    rows, nearest = rng.normal(size=(50, 16)) * 3, rng.normal(size=(50, 16)) * 3
    probes = off_table(rows, nearest, metric)
    np.testing.assert_array_equal(probes, off_table(rows, nearest, metric))  # seeded: a rebuild tunes alike
    if metric == "cosine":  # measured between unit vectors, as cosine ranks
        rows, nearest = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (rows, nearest))
    gap = np.linalg.norm(rows - nearest, axis=1)
    np.testing.assert_allclose(np.linalg.norm(probes - rows, axis=1), gap, rtol=1e-5)
    cos = np.einsum("ij,ij->i", probes - rows, nearest - rows) / (gap * gap)
    assert np.abs(cos).mean() < 0.5  # a random direction, not towards the nearest row


def test_both_the_rows_and_the_probes_must_reach_the_target() -> None:
    good, bad = np.ones(200), np.full(200, 0.9)
    assert reaches_both(good, good, 0.95) == (True, 1.0)
    assert reaches_both(good, bad, 0.95) == (False, pytest.approx(0.9))
    assert reaches_both(bad, good, 0.95)[0] is False
