"""What one shard's Ray actor does: build its table and indexes, answer branch searches and takes.

A shard is an ordinary table holding a row-id range of the source table, with the source's row
id kept in column :data:`SOURCE_ROWID`, and the same indexes as the source (same analyzer, BM25F
weights, metric, graph settings). Answers speak in source row ids.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hybrid.errors import HybridError, QueryError
from hybrid.index import manage
from hybrid.index.analyzer import Analyzer
from hybrid.index.catalog import IndexEntry
from hybrid.index.fulltext import COMBINED_FIELD, ROWID_FIELD, TANTIVY_BM25, FullTextIndex
from hybrid.query import chunk_layout, title_rows
from hybrid.query.allowed import allowed_rows
from hybrid.query.filter import compile_filter
from hybrid.ray import global_bm25 as g
from hybrid.storage.files import FileCache
from hybrid.storage.snapshot import Snapshot
from hybrid.storage.versions import VersionLog
from hybrid.table import Table

SOURCE_ROWID = "_source_rowid"
"""The column of a shard table holding each row's `_rowid` in the source table."""


def build_shard(source_root: str, version: int, lo: int, hi: int, dest_root: str, specs: list[dict[str, Any]]) -> int:
    """Write the live rows of the source's row-id range [lo, hi) as the table `dest_root`, with the
    indexes `specs` describes; return its row count. Runs in a Ray task (or in process)."""
    import hybrid

    root = Path(source_root)
    snap = Snapshot(root, VersionLog(root).load(version), FileCache(root))
    parts = []
    for batch in snap.scan(with_rowid=True):
        ids = batch.column(0).to_numpy()
        keep = (ids >= lo) & (ids < hi)
        if keep.any():
            parts.append(batch.filter(pa.array(keep)))
    if not parts:
        raise HybridError(f"shard [{lo}, {hi}) of {root.name} has no rows")
    rows = pa.Table.from_batches(parts)
    rows = rows.rename_columns([SOURCE_ROWID, *rows.column_names[1:]])
    dest = Path(dest_root)
    table = hybrid.connect(dest.parent, upkeep=None).create_table(dest.name, rows)
    layout = chunk_layout.read(snap.manifest.metadata)
    if layout is not None:  # the source's chunk layout (its title rows are no passages on a shard either)
        table.set_chunking(**{**asdict(layout), "parent_table": None})
    for spec in specs:
        if spec["kind"] == "fts":
            manage.create_fts_index(
                table._writable(),
                list(spec["columns"]),
                Analyzer.from_dict(spec["analyzer"]),
                spec["name"],
                False,
                spec["weights"],
                (float(spec["k1"]), float(spec["b"])),
                spec["filter_columns"],
                bool(spec.get("positions", True)),
            )
        elif spec["kind"] == "vector":
            manage.create_vector_index(
                table._writable(),
                spec["columns"][0],
                metric=spec["metric"],
                m=spec["m"],
                ef_construction=spec["ef_construction"],
                ef_search=spec["ef_search"],
                target_recall=None,
                name=spec["name"],
                replace_existing=False,
            )
        else:
            writable = table._writable()
            manage.create_scalar_index(writable, spec["columns"][0], spec["index_type"], spec["name"], False)
    return rows.num_rows


class ShardServer:
    """Serves one shard table: the body of a Ray actor (usable in process too)."""

    def __init__(self, root: str) -> None:
        self.table = Table(Path(root), upkeep=None)
        self.view = self.table.indexed_snapshot()
        ids = self.table.to_arrow([SOURCE_ROWID], with_rowid=True)
        self.rowids = ids.column("_rowid").to_numpy()
        self.source = ids.column(SOURCE_ROWID).to_numpy().astype(np.uint64)
        if np.any(np.diff(self.source.astype(np.int64)) <= 0):
            raise HybridError(f"shard {root}: its source row ids are not ascending; build the shards again")
        self._tokens: dict[str, dict[str, int]] = {}
        title = title_rows.column(self.view)
        self._titles: np.ndarray | None = None
        """This shard's title rows (sorted row ids), which a flat search never returns."""
        if title is not None:
            ids_, marks = title_rows.version_marks(self.view, title)
            self._titles = np.sort(ids_[marks]).astype(np.uint64)
        for entry in self.view.entries():
            cov = self.view.coverage(entry)
            if len(cov.unindexed) or len(cov.dead):
                raise HybridError(f"shard {root}: index {entry.name} is not current; build the shards again")

    def num_rows(self) -> int:
        return len(self.rowids)

    def _to_source(self, shard_ids: np.ndarray) -> np.ndarray:
        return self.source[np.searchsorted(self.rowids, shard_ids.astype(np.uint64))]

    def _allowed(self, where: str | None) -> np.ndarray | None:
        if where is None:
            return None
        return allowed_rows(self.view, compile_filter(where, self.view.schema)).ids

    def count(self, where: str | None) -> int:
        allowed = self._allowed(where)
        return len(self.rowids) if allowed is None else len(allowed)

    # -- vector branch --------------------------------------------------------------------

    def vector_search(
        self, column: str, vector: np.ndarray, k: int, where: str | None, ef: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """This shard's top `k` by distance: (source row ids, distances), through the table's own search."""
        q = self.table.search(vector, query_type="vector", vector_column=column).limit(k).select([SOURCE_ROWID])
        if where is not None:
            q = q.where(where)
        if ef is not None:
            q = q.ef_search(ef)
        found = q.to_arrow()
        return (
            found.column(SOURCE_ROWID).to_numpy().astype(np.uint64),
            found.column("_distance").to_numpy().astype(np.float32),
        )

    # -- text branch ----------------------------------------------------------------------

    def _fts(self, name: str) -> tuple[IndexEntry, FullTextIndex]:
        entry = next((e for e in self.view.entries() if e.kind == "fts" and e.name == name), None)
        if entry is None:
            raise HybridError(f"shard {self.table.path}: no full-text index named {name!r}")
        index = self.view.index(entry)
        assert isinstance(index, FullTextIndex)
        bm25 = (entry.params.get("k1", TANTIVY_BM25[0]), entry.params.get("b", TANTIVY_BM25[1]))
        if tuple(bm25) != TANTIVY_BM25:
            raise QueryError(f"sharded search scores with tantivy's BM25 (k1=1.2, b=0.75); {name} uses {bm25}")
        return entry, index

    def _field_names(self, index: FullTextIndex) -> list[str]:
        """tantivy field names by field id, in the order the index schema adds them."""
        return [ROWID_FIELD, *index.fields, *([COMBINED_FIELD] if index.weights is not None else [])]

    def _query_fields(self, index: FullTextIndex, boosts: dict[str, float] | None) -> list[str]:
        return [COMBINED_FIELD] if index.weights is not None and not boosts else list(index.fields)

    def text_stats(self, name: str, text: str, boosts: dict[str, float] | None) -> g.ShardTextStats:
        """Documents, tokens per field and documents per (field, query term) of this shard's index."""
        _, index = self._fts(name)
        if name not in self._tokens:
            columns = index.columns
            texts = self.table.to_arrow(columns).to_pydict()
            self._tokens[name] = g.field_tokens(
                texts, columns, index.fields, lambda v: len(index.analyzer.terms(v)), index.weights, COMBINED_FIELD
            )
        searcher = index.searcher
        terms = list(Counter(index.analyzer.terms(text)))
        freq = {(f, t): int(searcher.doc_freq(f, t)) for f in self._query_fields(index, boosts) for t in terms}
        return g.ShardTextStats(index.num_docs, self._tokens[name], freq)

    def text_search(
        self,
        name: str,
        text: str,
        boosts: dict[str, float] | None,
        k: int,
        where: str | None,
        stats: g.GlobalStats,
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """This shard's exact top `k` under the global statistics: (source row ids, BM25, depth searched)."""
        from hybrid.query.text import Match

        _, index = self._fts(name)
        compiled = index.compile(Match(text), boosts)
        empty = (np.empty(0, np.uint64), np.empty(0, np.float32), 0)
        if compiled is None:
            return empty
        allowed = self._allowed(where)
        if allowed is not None and len(allowed) == 0:
            return empty

        def hits(m: int) -> tuple[np.ndarray, np.ndarray, list[Any]]:
            return index._hits(compiled, m, allowed, self._titles)

        explain = g.explanation(compiled, index.searcher)
        bound = g.score_bound(self.text_stats(name, text, boosts), stats)
        ids, scores, depth = g.exact_top_k(hits, explain, k, bound, self._field_names(index), stats, 2 * k)
        return self._to_source(ids), scores, depth

    # -- rows -----------------------------------------------------------------------------

    def take(self, source_ids: np.ndarray, columns: list[str]) -> pa.Table:
        """Rows by source row id (in the order given), `_rowid` being the source's."""
        at = np.searchsorted(self.source, source_ids.astype(np.uint64))
        rows = self.table.take(self.rowids[at], [c for c in columns if c != "_rowid"])
        return rows.drop_columns([c for c in ("_rowid",) if c in rows.column_names])
