"""The search benchmark's `hybrid` system: our table with its default indexes.

``t.create_fts_index(["text"])``, ``t.create_vector_index("vector")`` (defaults: cosine, M=16,
ef_construction=200, ef_search=64); queries ``t.search(text).vector(v).limit(10).select(["id"]).to_arrow()``,
``t.search(v, query_type="vector")``, ``t.search(text)``, ``.where(sql)``; hybrid queries fuse with
``RRF(k=60)`` and equal weights like the floor and LanceDB (the library's default, min-max linear
fusion, would not match the quality columns' reference). The filter column gets a scalar index before the
full-text index is built (``t.create_scalar_index("category", kind=--hybrid-scalar-index)``,
default ``auto``; ``none`` leaves filters to DuckDB), so the full-text index stores it as a filter
field by default; ``--hybrid-target-recall`` builds the vector index with
``target_recall`` (the floor and LanceDB HNSW-SQ then search with the ef_search it chose);
``--fts-positions no`` builds the full-text index with ``positions=False`` (LanceDB then with
``with_position=False``, its default; ``yes`` gives both positions); ``--vector-index`` picks its
kind (default ``hnsw``; ``hnsw_int8`` is the analogue of LanceDB's HNSW-SQ). hybrid runs the vector
and text branches of a hybrid query concurrently in its own 2+-thread pool (measured as is).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.files import dir_bytes
from bench.frame import now
from bench.search_data import K
from bench.search_system import DatabaseSystem


class HybridSystem(DatabaseSystem):
    name = "hybrid"

    def __init__(self, root, args):
        import hybrid

        super().__init__(root, args, hybrid)

    def _index_folder(self, kind: str) -> Path:
        from hybrid.index.catalog import entries

        (entry,) = [e for e in entries(self.t.snapshot()) if e.kind == kind]
        return self.t.path / entry.path

    def _timed(self, kind: str, fn: Callable[[], Any]) -> None:
        """Time an index build; the bytes of the new index's folder."""
        t0 = now()
        fn()
        self.build[f"{kind}_seconds"] = now() - t0
        self.build[f"{kind}_bytes"] = dir_bytes(self._index_folder(kind))

    def build_fts(self) -> None:
        kind = getattr(self.args, "hybrid_scalar_index", "auto")
        if kind != "none":  # first, so that the full-text index stores the filter column (its default)
            self._timed("scalar", lambda: self.t.create_scalar_index("category", kind=kind))
        positions = getattr(self.args, "fts_positions", None) != "no"
        self._timed("fts", lambda: self.t.create_fts_index(["text"], positions=positions))

    def build_vector(self) -> None:
        recall = getattr(self.args, "hybrid_target_recall", None)
        kind = getattr(self.args, "vector_index", "hnsw")
        self.build["vector_kind"] = kind
        self._timed("vector", lambda: self.t.create_vector_index("vector", target_recall=recall, kind=kind))
        self.build["index_stats"] = self.t.index_stats()

    @property
    def ef_search(self) -> int:
        (s,) = [s for s in self.t.index_stats() if s["kind"] == "vector"]
        return int(s.get("ef_search", 64))  # IVF kinds have no ef: the others then search with 64

    def footprint(self) -> dict[str, int]:
        """Bytes on disk by part: the table's own files (data, deletions, manifests) and each index."""
        total = dir_bytes(self.root / "db")
        parts = {k: self.build.get(f"{k}_bytes", 0) for k in ("vector", "fts", "scalar")}
        data = dir_bytes(self.t.path / "data")
        return {"table": total - sum(parts.values()), "table_data": data, **parts, "total": total}

    def dirs(self):
        return [self.root / "db"]

    def prepare(self):
        self.reopen()

    def _q(self, q, where):
        if where is not None:
            q = q.where(where.sql)
        return q.limit(K).select(["id"]).to_arrow()

    def vector(self, v, where):
        return self._q(self.t.search(v, query_type="vector"), where)

    def text(self, s, where):
        return self._q(self.t.search(s), where)

    def hybrid(self, s, v, where):
        from hybrid.query.fusion import RRF

        return self._q(self.t.search(s).vector(v).fuse(RRF(60)).weights("equal"), where)

    def explain(self, s, v, where) -> str:
        from hybrid.query.fusion import RRF

        q = self.t.search(s).vector(v).fuse(RRF(60)).weights("equal").limit(K).select(["id"])
        return (q.where(where.sql) if where is not None else q).explain()
