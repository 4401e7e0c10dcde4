"""What a writer makes ready for the version it commits (:mod:`hybrid.query.after_write`), and what a
new version's snapshot shares with the last one (:class:`hybrid.storage.snapshot.Snapshot`).

The first search after a write must not build what the write could have: the readers of the result
rows, the output schemas. What is made ahead or shared must answer exactly as if made afresh, and
nothing may be shared across a change of the columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import hybrid
from hybrid.storage.snapshot import Snapshot

DIM = 8


def _rows(start: int, n: int) -> pa.Table:
    rng = np.random.default_rng(start)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return pa.table(
        {
            "id": np.arange(start, start + n),
            "text": [f"word{i % 7} row{i}" for i in range(start, start + n)],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), DIM),
        }
    )


def _table(tmp_path: Path) -> hybrid.Table:
    t = hybrid.connect(tmp_path, upkeep=None).create_table("docs", _rows(0, 200))
    t.create_fts_index(["text"])
    t.create_vector_index("vector")
    return t


def _search(t: hybrid.Table, i: int, columns: list[str] | None = None) -> list[dict]:
    q = t.search(f"word{i % 7}", query_type="hybrid").vector(np.full(DIM, 0.1 * (i + 1), np.float32)).limit(5)
    return (q.select(columns) if columns is not None else q).to_list()


def test_a_write_makes_the_readers_its_table_searched_with_ready_for_the_new_version(tmp_path: Path) -> None:
    t = _table(tmp_path)
    _search(t, 0)
    _search(t, 1, ["id"])
    readers = t._search.stores["row_readers"]
    version = t.add(_rows(200, 1)).version
    assert (version, None) in readers and (version, ("id",)) in readers  # before any search of it
    made = {key: readers[key] for key in readers if key[0] == version}
    for i in range(3):
        _search(t, i)
        _search(t, i, ["id"])
    assert {key: readers[key] for key in readers if key[0] == version} == made  # used, not made again
    # what the prepared readers return is what a fresh table object reads
    fresh = hybrid.connect(tmp_path, upkeep=None).open_table("docs")
    for i in range(3):
        assert _search(t, i) == _search(fresh, i)
        assert _search(t, i, ["id"]) == _search(fresh, i, ["id"])


def test_a_table_that_never_searched_prepares_no_readers(tmp_path: Path) -> None:
    t = _table(tmp_path)
    t.add(_rows(200, 1))
    assert not t._search.stores.get("row_readers")


def test_a_new_version_shares_output_schemas_only_while_the_columns_are_the_same(tmp_path: Path) -> None:
    t = _table(tmp_path)
    first = t.snapshot()
    schema = first.output_schema(["id", "text"], with_rowid=True)
    assert first.vector_columns() == ["vector"]
    t.add(_rows(200, 1))
    second = t.snapshot()
    assert second is not first and second.output_schema(["id", "text"], with_rowid=True) is schema
    t.rename_column("vector", "embedding")
    renamed = t.snapshot()
    assert renamed.vector_columns() == ["embedding"]  # not the last version's list
    assert renamed.output_schema(["id", "embedding"], with_rowid=True).names == ["_rowid", "id", "embedding"]
    # built beside the first snapshot on purpose: nothing is shared across the rename
    beside = Snapshot(t.path, renamed.manifest, renamed.cache, first)
    assert beside.vector_columns() == ["embedding"]
    assert beside.output_schema(["id", "text"], with_rowid=True) is not schema
    rows = t.search("word1", query_type="hybrid").vector(np.ones(DIM, np.float32)).limit(3).to_list()
    assert rows and "embedding" in rows[0] and "vector" not in rows[0]
