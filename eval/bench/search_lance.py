"""The search benchmark's LanceDB systems: native FTS, one vector index, its hybrid query.

* lance-hnsw    - LanceDB with its native FTS (``create_fts_index("text")``), an
  HNSW-SQ vector index (``HnswSq(distance_type="cosine", m=16, ef_construction=200)``)
  queried with ``ef`` = hybrid's ef_search, its hybrid query with
  ``RRFReranker(K=60)``; filters via ``.where(sql, prefilter=True)``.
* lance-ivfpq   - the same on a second LanceDB table with an IVF-PQ index
  (``IvfPq(distance_type="cosine")``, LanceDB's defaults for partitions,
  sub-vectors, nprobes, no refine unless ``--lance-refine-factor``).

Both get a scalar index on ``category`` (``--lance-scalar-index``).  LanceDB runs the two branches of
a hybrid query in a Python thread pool on top of its Rust runtime (all cores unless
``--lance-cpu-threads``), measured as is.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.files import dir_bytes, folder_bytes
from bench.frame import now
from bench.search_data import RRF_K, K
from bench.search_system import DatabaseSystem


class LanceSystem(DatabaseSystem):
    """LanceDB: native FTS, one vector index (HNSW-SQ or IVF-PQ), hybrid query with RRFReranker."""

    def __init__(self, root, args, flavour: str):
        import lancedb

        self.name = f"lance-{flavour}"
        super().__init__(root, args, lancedb)
        self.flavour = flavour
        self.ef = 64

    def table_dir(self) -> Path:
        return self.root / "db" / "docs.lance"

    def _index_dirs(self) -> set[Path]:
        d = self.table_dir() / "_indices"
        return set(d.iterdir()) if d.is_dir() else set()

    def _timed_index(self, what: str, fn: Callable[[], Any]) -> None:
        before = self._index_dirs()
        t0 = now()
        fn()
        self.build[f"{what}_seconds"] = now() - t0
        self.build[f"{what}_bytes"] = folder_bytes(sorted(self._index_dirs() - before))

    def build_fts(self) -> None:
        positions = getattr(self.args, "fts_positions", None)
        if positions is None:
            self._timed_index("fts", lambda: self.t.create_fts_index("text"))
        else:
            self._timed_index("fts", lambda: self.t.create_fts_index("text", with_position=positions == "yes"))

    def build_vector(self, ef: int) -> None:
        from lancedb.index import HnswSq, IvfPq

        self.ef = ef
        if self.flavour == "hnsw":
            config = HnswSq(distance_type="cosine", m=16, ef_construction=200)
        else:
            config = IvfPq(distance_type="cosine")
        self.build["vector_config"] = repr(config)
        self._timed_index("vector", lambda: self.t.create_index("vector", config=config))

    def build_scalar(self, kind: str) -> None:
        self._timed_index("scalar", lambda: self.t.create_scalar_index("category", index_type=kind.upper()))

    def dirs(self):
        return [self.table_dir()]

    def footprint(self) -> dict[str, int]:
        """Bytes on disk by part: the table's own files (data, deletions, manifests) and each index."""
        total = dir_bytes(self.table_dir())
        parts = {k: self.build.get(f"{k}_bytes", 0) for k in ("vector", "fts", "scalar")}
        data = dir_bytes(self.table_dir() / "data")
        return {"table": total - dir_bytes(self.table_dir() / "_indices"), "table_data": data, **parts, "total": total}

    def prepare(self):
        self.reopen()
        self.build["indices"] = [str(i) for i in self.t.list_indices()]
        from lancedb.rerankers import RRFReranker

        self.reranker = RRFReranker(K=RRF_K)

    def _vec_opts(self, q):
        q = q.distance_type("cosine")
        a = self.args
        if self.flavour == "hnsw":
            q = q.ef(self.ef)
        if a.lance_nprobes is not None:
            q = q.nprobes(a.lance_nprobes)
        if a.lance_refine_factor is not None:
            q = q.refine_factor(a.lance_refine_factor)
        return q

    def _finish(self, q, where):
        if where is not None:
            q = q.where(where.sql, prefilter=True)
        return q.limit(K).select(["id"]).to_arrow()

    def vector(self, v, where):
        return self._finish(self._vec_opts(self.t.search(v, query_type="vector", vector_column_name="vector")), where)

    def text(self, s, where):
        return self._finish(self.t.search(s, query_type="fts"), where)

    def hybrid(self, s, v, where):
        q = self.t.search(query_type="hybrid").vector(v).text(s).rerank(self.reranker)
        return self._finish(self._vec_opts(q), where)
