"""The filtered path's caches: allowed-row sets per (version, filter), their gathered vectors, filter texts.

A scoped key sends the same `where` with every request; these caches make the second search
with it cheaper, and must never change an answer: cached and uncached searches agree exactly,
a new version (a delete, an add) is seen at once, and the caches stay within their bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import hybrid
from hybrid.errors import FilterError
from hybrid.index.cache import SearchCache
from hybrid.index.catalog import masks_of
from hybrid.index.exact import exact_search, row_vectors
from hybrid.query import allowed as allowed_mod
from hybrid.query.allowed import cached_allowed
from hybrid.query.filter import compile_filter

DIM = 16
TENANTS = 20


def _batch(start: int, n: int, seed: int, null_every: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    ids = np.arange(start, start + n)
    flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIM)
    if null_every:  # some rows without a vector: exact search must skip them
        mask = pa.array([(i % null_every) == 0 for i in ids])
        flat = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), DIM, mask=mask)
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "tenant_id": pa.array([f"t{i % TENANTS:02d}" for i in ids]),
            "text": [f"{words[i % 5]} {words[(i // 5) % 5]} row {i}" for i in ids],
            "vector": flat,
        }
    )


def _build(folder: Path) -> hybrid.Table:
    """Four fragments (three appends), rows without vectors, a scalar and both search indexes."""
    db = hybrid.connect(folder, upkeep=None)
    t = db.create_table("docs", _batch(0, 3_000, 1, null_every=37))
    for part in range(1, 4):
        t.add(_batch(3_000 * part, 1_000, 1 + part))
    t.create_scalar_index("tenant_id")
    t.create_fts_index(["text"])
    t.create_vector_index("vector", metric="cosine")
    return t


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> hybrid.Table:
    """The table, with rows deleted in every fragment since the indexes were built (tests only read it)."""
    t = _build(tmp_path_factory.mktemp("filter_cache") / "db")
    t.delete("id % 11 = 0")
    return t


@pytest.fixture
def table(tmp_path: Path) -> hybrid.Table:
    """A table of the test's own, to write to."""
    return _build(tmp_path / "db")


@pytest.mark.parametrize("metric", ["cosine", "l2", "dot"])
def test_gathered_vectors_give_exactly_the_distances_of_the_masked_exact_search(
    shared: hybrid.Table, metric: str
) -> None:
    view = shared.indexed_snapshot()
    rng = np.random.default_rng(5)
    for tenant in range(0, TENANTS, 3):
        flt = compile_filter(f"tenant_id = 't{tenant:02d}'", view.schema)
        allowed = allowed_mod.allowed_rows(view, flt)
        assert len(allowed.ids) > 100
        gathered = row_vectors(view, "vector", allowed.ids, metric)
        assert len(gathered.ids) < len(allowed.ids)  # the rows without a vector are left out
        for _ in range(3):
            q = rng.standard_normal(DIM).astype(np.float32)
            want = exact_search(view, "vector", q, metric, 25, masks_of(view.snapshot, allowed.ids))
            got = gathered.search(q, metric, 25)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])  # bit for bit: the same float32 sums


def test_a_cached_filtered_search_answers_as_an_uncached_one(shared: hybrid.Table) -> None:
    table = shared
    rng = np.random.default_rng(9)
    for i in range(12):
        where = f"tenant_id = 't{i % 4:02d}'"  # repeated: the second time from the caches
        q = rng.standard_normal(DIM).astype(np.float32)
        cached = table.search("alpha gamma").vector(q).where(where).limit(10).to_arrow()
        fresh = hybrid.connect(table.path.parent, upkeep=None).open_table("docs")  # a cold cache
        cold = fresh.search("alpha gamma").vector(q).where(where).limit(10).to_arrow()
        assert cached.column("_rowid").to_pylist() == cold.column("_rowid").to_pylist()
        assert cached.column("_score").to_pylist() == cold.column("_score").to_pylist()
        assert set(cached.column("tenant_id").to_pylist()) == {f"t{i % 4:02d}"}
    view = table.indexed_snapshot()
    flt = compile_filter("tenant_id = 't01'", view.schema)
    allowed = cached_allowed(view, flt)
    assert allowed is cached_allowed(view, flt)
    assert allowed._vectors, "the set's vectors are kept for the next search"


def test_a_new_version_sees_deletes_and_adds_at_once(table: hybrid.Table) -> None:
    where = "tenant_id = 't03'"
    q = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    first = table.search(q).where(where).limit(5).to_arrow().column("id").to_pylist()
    assert len(first) == 5
    table.delete(f"id = {first[0]}")
    after_delete = table.search(q).where(where).limit(5).to_arrow().column("id").to_pylist()
    assert first[0] not in after_delete and after_delete[:4] == first[1:]
    # a new row of the tenant that is the query itself: nearest of all
    new = _batch(50_003, 1, 0).set_column(3, "vector", pa.FixedSizeListArray.from_arrays(pa.array(q), DIM))
    assert new.column("tenant_id")[0].as_py() == "t03"
    table.add(new)
    after_add = table.search(q).where(where).limit(5).to_arrow().column("id").to_pylist()
    assert after_add[0] == 50_003 and after_add[1:] == after_delete[:4]
    # the same filter on another tenant's new row is not fooled by the cached set
    other = table.search(q).where("tenant_id = 't04'").limit(5).to_arrow().column("id").to_pylist()
    assert 50_003 not in other


class _Sized:
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


def test_the_byte_bounded_store_drops_the_least_recently_used() -> None:
    cache = SearchCache()
    for key in "abc":
        cache.remember("filters", key, lambda: _Sized(40), keep=100, max_bytes=100)
    assert list(cache.stores["filters"]) == ["b", "c"]  # 120 bytes > 100: the oldest went
    cache.remember("filters", "b", lambda: _Sized(0), keep=100, max_bytes=100)  # a hit: b is now newest
    cache.remember("filters", "d", lambda: _Sized(40), keep=100, max_bytes=100)
    assert list(cache.stores["filters"]) == ["b", "d"]
    cache.remember("filters", "big", lambda: _Sized(500), keep=100, max_bytes=100)
    assert list(cache.stores["filters"]) == ["big"]  # alone over the bound: kept, it is in use
    for i in range(5):
        cache.remember("counted", i, lambda: _Sized(1), keep=3, max_bytes=100)
    assert list(cache.stores["counted"]) == [2, 3, 4]


def test_the_filter_cache_stays_within_its_byte_bound(shared: hybrid.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    table = shared
    monkeypatch.setattr(allowed_mod, "FILTER_CACHE_BYTES", 64 << 10)
    q = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    for tenant in range(TENANTS):
        hits = table.search(q).where(f"tenant_id = 't{tenant:02d}'").limit(3).to_arrow()
        assert set(hits.column("tenant_id").to_pylist()) == {f"t{tenant:02d}"}
    store = table.indexed_snapshot().cache.stores["filters"]
    held = sum(v.nbytes for v in store.values())
    one = max(v.nbytes for v in store.values())
    assert one > 0 and len(store) < TENANTS
    assert held <= (64 << 10) + one  # at most one set over: the newest stays
    assert (table.indexed_snapshot().version, "tenant_id = 't19'") in store  # the last used is kept


def test_big_gathered_sets_are_not_kept(shared: hybrid.Table, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allowed_mod, "VECTORS_MAX_BYTES", 1_000)
    view = shared.indexed_snapshot()
    allowed = allowed_mod.allowed_rows(view, compile_filter("tenant_id = 't05'", view.schema))
    found = allowed.vectors(view, "vector", "cosine")
    assert found.nbytes > 1_000 and not allowed._vectors
    assert allowed.vectors(view, "vector", "cosine").search(found.matrix[0], "cosine", 1)[0][0] == found.ids[0]


def test_a_filter_text_is_checked_again_on_another_schema(table: hybrid.Table) -> None:
    before = table.schema
    first = compile_filter("tenant_id = 't01'", before)
    assert compile_filter("tenant_id = 't01'", before) is first  # the same text, the same schema object
    table.rename_column("tenant_id", "owner")
    with pytest.raises(FilterError, match="tenant_id"):
        compile_filter("tenant_id = 't01'", table.schema)
    assert table.search("alpha").where("owner = 't01'").limit(3).to_arrow().num_rows == 3


def test_an_erasure_leaves_no_erased_vector_in_the_caches(table: hybrid.Table) -> None:
    q = np.random.default_rng(4).standard_normal(DIM).astype(np.float32)
    where = "tenant_id = 't07'"
    before = table.search(q).where(where).limit(5).to_arrow().column("id").to_pylist()
    cache = table.indexed_snapshot().cache
    kept = [a for a in cache.stores["filters"].values() if a._vectors]
    assert kept, "the tenant's vectors were gathered and kept"
    erased = before[0]
    table.erase(f"id = {erased}")
    for store in cache.stores.values():  # purged: nothing gathered before the erasure is held
        for value in store.values():
            held = getattr(value, "_vectors", {})
            assert all(erased not in v.ids for v in held.values())
    after = table.search(q).where(where).limit(5).to_arrow().column("id").to_pylist()
    assert erased not in after and after[:4] == before[1:]
