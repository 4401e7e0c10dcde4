"""`Table`: a versioned table of documents, metadata, blobs and vectors on disk."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa

from hybrid.commits import Commit, VersionInfo, index_commit, reset_content
from hybrid.embedders import binding
from hybrid.errors import CommitConflictError, CorruptionError, ReadOnlyError, SchemaError, require
from hybrid.feedback.mixin import FeedbackMixin
from hybrid.index import manage
from hybrid.index.analyzer import Analyzer, Tokenizer
from hybrid.index.ann_kinds import VectorKind
from hybrid.index.cache import SearchCache
from hybrid.index.upkeep import DEFAULT_UPKEEP, Upkeep, UpkeepWorker, commit_compaction, run_upkeep
from hybrid.index.view import IndexedSnapshot
from hybrid.query import chunk_layout
from hybrid.query.after_write import prepare_version
from hybrid.query.allowed import allowed_rows
from hybrid.query.chunk_layout import ChunkLayout
from hybrid.query.filter import compile_filter
from hybrid.query.search import Query, is_vector_like
from hybrid.storage import transactions as tx
from hybrid.storage.check import CheckReport, check_table
from hybrid.storage.files import FileCache
from hybrid.storage.ingest import check_column_name, conform, to_batches
from hybrid.storage.manifest import Fragment, Manifest
from hybrid.storage.snapshot import ROWID, RowPredicate, Snapshot
from hybrid.storage.versions import VersionLog
from hybrid.storage.writer import CleanupStats, plan_compaction, write_fragments

if TYPE_CHECKING:
    import pandas
    import polars

    from hybrid.changes import ColumnSpec
    from hybrid.embedders.base import Embedder
    from hybrid.erasure import EraseReport
    from hybrid.query.search import QueryType
    from hybrid.query.text import TextQuery


logger = logging.getLogger(__name__)


COMPACT_ATTEMPTS = 5
"""A compaction that lost its commit race to a change of the same fragments plans again this many times."""


class Table(FeedbackMixin):
    """A table stored as a folder of immutable Arrow files and versioned manifests.

    Get one from :meth:`hybrid.Database.create_table` or ``open_table``. Every
    read sees one committed version; writes commit a new version atomically.

    Example:
        >>> import hybrid, tempfile
        >>> db = hybrid.connect(tempfile.mkdtemp())
        >>> t = db.create_table("docs", [{"id": 1, "text": "hello"}])
        >>> t.add([{"id": 2, "text": "world"}]).version
        2
        >>> t.count_rows("id > 1")
        1
    """

    def __init__(self, root: Path, *, pinned: Manifest | None = None, upkeep: Upkeep | None = DEFAULT_UPKEEP) -> None:
        self._root = root
        self._upkeep = UpkeepWorker(upkeep) if upkeep is not None and upkeep.enabled and pinned is None else None
        self._log = VersionLog(root)
        self._cache = FileCache(root)
        self._pinned = pinned
        self._search = SearchCache()
        self._last_snapshot: Snapshot | None = None

    def __repr__(self) -> str:
        mode = f", checkout of version {self._pinned.version}" if self._pinned else ""
        return f"Table({self.name!r}, version={self.version}{mode})"

    # -- identity -----------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._root.name

    @property
    def path(self) -> Path:
        return self._root

    @property
    def version(self) -> int:
        """The version this table object reads (the newest unless checked out)."""
        return self._manifest().version

    @property
    def schema(self) -> pa.Schema:
        return self._manifest().schema

    @property
    def embeddings(self) -> dict[str, tuple[str, Embedder]]:
        """The bound vector columns: ``{vector_column: (text_column, embedder)}``."""
        return {b.column: (b.source, b.embedder) for b in binding.read(self._manifest().metadata)}

    @property
    def read_only(self) -> bool:
        return self._pinned is not None

    def _manifest(self) -> Manifest:
        return self._pinned if self._pinned is not None else self._log.load_latest()

    def snapshot(self) -> Snapshot:
        """A consistent view of the current version (the checkout, or the newest)."""
        manifest = self._pinned if self._pinned is not None else self._log.load_latest()  # as _manifest()
        last = self._last_snapshot
        if last is not None and last.manifest is manifest:  # the log hands out one object per version read
            return last
        snap = self._last_snapshot = Snapshot(self._root, manifest, self._cache, last)
        return snap

    def indexed_snapshot(self) -> IndexedSnapshot:
        """The current version with its indexes: what searches read through (one consistent version)."""
        return IndexedSnapshot.of(self._root, self.snapshot(), self._search)

    def _writable(self) -> manage.Writable:
        return manage.Writable(
            self.name, self._root, self._log, self._cache, self._search, self._write_base, self._manifest
        )

    def _after_write(self) -> None:
        """Make the new version's unindexed rows searchable now (not at its first search), start upkeep."""
        try:
            prepare_version(self.indexed_snapshot())
        except Exception:  # the commit stands; a search reads the rows itself
            logger.warning("preparing the new rows of %s for search failed", self.name, exc_info=True)
        if self._upkeep is not None:
            self._upkeep.after_write(self._writable())

    def run_upkeep(self, policy: Upkeep = DEFAULT_UPKEEP) -> list[Commit]:
        """Do the upkeep that `policy` finds due now, in this thread: compact runs of small fragments,
        merge indexes that miss or hold dead enough rows (what background upkeep does after writes)."""
        return [Commit(m.version, m.operation) for m in run_upkeep(self._writable(), policy)]

    def wait_for_upkeep(self, timeout: float | None = None) -> None:
        """Block until the background upkeep this table object started (if any) has finished.

        Upkeep (:class:`hybrid.Upkeep`) compacts small fragments and merges indexes after
        writes, in a background thread, as ordinary commits named "compact" and "merge_index".
        """
        if self._upkeep is not None:
            self._upkeep.wait(timeout)

    def _write_base(self, operation: str) -> Manifest:
        if self._pinned is not None:
            raise ReadOnlyError(
                f"{operation}: this is a read-only checkout of version {self._pinned.version}; "
                "use restore() to make it the newest version, or open the table again to write"
            )
        return self._log.load_latest()

    # -- reads --------------------------------------------------------------------------

    def _predicate(self, snap: Snapshot, where: str | None) -> tuple[RowPredicate | None, tuple[str, ...]]:
        if where is None:
            return None, ()
        flt = compile_filter(where, snap.schema)
        return flt.mask, flt.columns

    def _allowed_ids(self, snap: Snapshot, where: str) -> np.ndarray:
        """Row ids of the live rows matching `where`: from scalar indexes where they answer, else DuckDB."""
        view = IndexedSnapshot(self.name, self._root, snap, self._search)
        return allowed_rows(view, compile_filter(where, snap.schema)).ids

    def count_rows(self, where: str | None = None) -> int:
        """Number of live rows, optionally only those matching the SQL expression `where`."""
        snap = self.snapshot()
        return snap.manifest.num_rows if where is None else len(self._allowed_ids(snap, where))

    def scan(
        self,
        columns: Sequence[str] | None = None,
        where: str | None = None,
        batch_size: int = 65_536,
        *,
        with_rowid: bool = False,
    ) -> Iterator[pa.RecordBatch]:
        """Stream record batches of the live rows (of one version, even while others write)."""
        snap = self.snapshot()
        predicate, cols = self._predicate(snap, where)
        return snap.scan(
            columns, with_rowid=with_rowid, batch_size=batch_size, predicate=predicate, predicate_columns=cols
        )

    def to_arrow(
        self, columns: Sequence[str] | None = None, where: str | None = None, *, with_rowid: bool = False
    ) -> pa.Table:
        """The live rows as a pyarrow Table (zero-copy from memory-mapped files where possible)."""
        snap = self.snapshot()
        predicate, cols = self._predicate(snap, where)
        return snap.to_arrow(columns, with_rowid=with_rowid, predicate=predicate, predicate_columns=cols)

    def to_pandas(
        self, columns: Sequence[str] | None = None, where: str | None = None, *, with_rowid: bool = False
    ) -> pandas.DataFrame:
        require("pandas", "pandas")
        return self.to_arrow(columns, where, with_rowid=with_rowid).to_pandas()

    def to_polars(
        self, columns: Sequence[str] | None = None, where: str | None = None, *, with_rowid: bool = False
    ) -> polars.DataFrame:
        pl: Any = require("polars", "polars")
        return pl.from_arrow(self.to_arrow(columns, where, with_rowid=with_rowid))

    def take(self, rowids: Sequence[int] | np.ndarray | pa.Array, columns: Sequence[str] | None = None) -> pa.Table:
        """Rows by `_rowid`, in request order; reads only those rows (blobs included)."""
        return self.snapshot().take(rowids, columns)

    # -- writes -------------------------------------------------------------------------

    def add(self, data: Any) -> Commit:
        """Append rows; they get new row ids. Raises SchemaError / VectorError on bad data.

        Vector columns bound to an embedder (see ``create_table(embedding=...)``) are
        filled from their text column unless the rows bring their own vectors.
        """
        base = self._write_base("add")
        _, batches = to_batches(data)
        batches = binding.fill_batches(batches, binding.read(base.metadata))
        new, rows = tx.append(self._log, base, (conform(b, base.schema) for b in batches))
        self._after_write()
        return Commit(new.version, "append", inserted=rows)

    def _matching_rowids(self, snap: Snapshot, where: str | None) -> np.ndarray:
        if where is not None:
            return self._allowed_ids(snap, where)
        ids = [b.column(0).to_numpy() for b in snap.scan([], with_rowid=True)]
        return np.concatenate(ids) if ids else np.empty(0, dtype=np.uint64)

    def delete(self, where: str) -> Commit:
        """Delete the rows matching the SQL boolean expression `where` (e.g. ``"year < 2000"``)."""
        base = self._write_base("delete")
        if not isinstance(where, str):
            raise SchemaError("delete needs a where expression; use 'true' to delete every row")
        rowids = self._matching_rowids(Snapshot(self._root, base, self._cache), where)
        return self._commit_changes(base, "delete", rowids, [], only_deletes_ok=True)

    def _commit_changes(
        self,
        base: Manifest,
        operation: str,
        rowids: np.ndarray,
        fragments: list[Fragment],
        *,
        only_deletes_ok: bool,
        strict_appends: bool = False,
        updated: int = 0,
    ) -> Commit:
        inserted = sum(f.physical_rows for f in fragments) - updated
        deleted = [0]

        def rebase(latest: Manifest) -> Manifest:
            tx.require_same_schema(operation, base, latest)
            if strict_appends and latest.next_rowid != base.next_rowid:
                raise tx.conflict(operation, base, latest, "added rows that may hold the same keys")
            merged, deleted[0] = tx.apply_deletes(
                self._root,
                self._cache,
                operation,
                base,
                latest,
                rowids,
                tolerate_gone=lambda: only_deletes_ok and tx.only_deleted_since(self._log, base, latest),
            )
            return tx.append_fragments(merged, fragments)

        new = tx.commit(
            self._log,
            base,
            operation,
            rebase,
            {"inserted": inserted, "updated": updated, "deleted": len(rowids) - updated},
        )
        self._after_write()
        return Commit(new.version, operation, inserted=inserted, updated=updated, deleted=deleted[0] - updated)

    def update(
        self,
        where: str | None = None,
        values: Mapping[str, Any] | None = None,
        *,
        values_sql: Mapping[str, str] | None = None,
    ) -> Commit:
        """Set columns of the rows matching `where` (all rows if None).

        `values` maps column -> Python value; `values_sql` maps column -> SQL
        expression over the row (``{"views": "views + 1"}``). Updated rows get
        new row ids; their old ids are never live again.
        """
        from hybrid.changes import updated_rows

        base = self._write_base("update")
        snap = Snapshot(self._root, base, self._cache)
        if not values and not values_sql:
            raise SchemaError("update needs values or values_sql")
        predicate, cols = self._predicate(snap, where)
        matched = snap.to_arrow(None, with_rowid=True, predicate=predicate, predicate_columns=cols)
        new_rows = updated_rows(matched.drop_columns([ROWID]), base.schema, values or {}, values_sql or {})
        changed = set(values or {}) | set(values_sql or {})
        stale = [b for b in binding.read(base.metadata) if b.source in changed and b.column not in changed]
        if stale and new_rows.num_rows:  # the text changed: its vectors must follow
            kept = new_rows.drop_columns([x.column for x in stale])
            new_rows = pa.Table.from_batches(
                [conform(binding.fill(b, stale), base.schema) for b in kept.to_batches()], base.schema
            )
        fragments = write_fragments(self._root, new_rows.to_batches(), base.schema, base.field_ids)
        rowids = matched.column(ROWID).to_numpy()
        return self._commit_changes(base, "update", rowids, fragments, only_deletes_ok=False, updated=len(rowids))

    def merge_insert(
        self,
        data: Any,
        on: str | Sequence[str],
        *,
        when_matched: Literal["update", "ignore"] = "update",
        when_not_matched: Literal["insert", "ignore"] = "insert",
        when_not_matched_by_source: Literal["keep", "delete"] = "keep",
    ) -> Commit:
        """Upsert by key: update matched rows, insert new ones, optionally delete rows missing from `data`.

        Columns absent from `data` keep their values in updated rows (a column that
        any row of a list of dicts names is present, null where a row omits it). A key
        repeated in `data` raises DuplicateKeyError before anything is written.
        """
        from hybrid.changes import plan_merge

        base = self._write_base("merge_insert")
        snap = Snapshot(self._root, base, self._cache)
        bindings = binding.read(base.metadata)
        if bindings:
            data_schema, batches = to_batches(data)
            filled = list(binding.fill_batches(batches, bindings))
            data = pa.Table.from_batches(filled) if filled else data_schema.empty_table()
        plan = plan_merge(
            snap,
            data,
            [on] if isinstance(on, str) else list(on),
            when_matched,
            when_not_matched,
            when_not_matched_by_source,
        )
        fragments = write_fragments(self._root, plan.rows.to_batches(), base.schema, base.field_ids)
        return self._commit_changes(
            base,
            "merge_insert",
            plan.delete_rowids,
            fragments,
            only_deletes_ok=False,
            strict_appends=True,
            updated=plan.updated,
        )

    # -- schema evolution ---------------------------------------------------------------

    def add_columns(
        self, spec: ColumnSpec, *, input_columns: Sequence[str] | None = None, batch_size: int = 8_192
    ) -> Commit:
        """Add columns without rewriting existing data files.

        `spec` is one of: a dict of name -> SQL expression over existing columns;
        a ``pa.Field`` / list of fields / ``pa.Schema`` (all-null columns, no data
        written); a function from a ``pa.RecordBatch`` of `input_columns` to a
        table/batch/dict of new columns (e.g. an embedding model); or values: a
        table/dict/DataFrame of new columns with one row per live row in scan
        order, or with a ``_rowid`` column to align by row id; or a dict of name ->
        ``(text_column, embedder)``: a new model's vectors for every row, and the
        binding is kept so later writes and text queries use it.
        """
        from hybrid.changes import compute_new_columns

        base = self._write_base("add_columns")
        snap = Snapshot(self._root, base, self._cache)
        bound = binding.parse_spec(spec)
        if bound:
            binding.check_schema(base.schema, [replace(b, column="") for b in bound])
            spec, input_columns = binding.column_function(bound), sorted({b.source for b in bound})
        schema, field_ids, files = compute_new_columns(self._root, snap, spec, input_columns, batch_size)

        def rebase(latest: Manifest) -> Manifest:
            tx.require_same_schema("add_columns", base, latest)
            if [f.id for f in latest.fragments] != [f.id for f in base.fragments]:
                raise tx.conflict("add_columns", base, latest, "added or compacted fragments")
            fragments = tuple(
                replace(f, files=f.files + ((files[f.id],) if f.id in files else ())) for f in latest.fragments
            )
            return replace(
                latest,
                fragments=fragments,
                schema=schema,
                field_ids=field_ids,
                next_field_id=max(field_ids, default=-1) + 1,
                schema_epoch=latest.schema_epoch + 1,
                metadata=binding.to_metadata(latest.metadata, [*binding.read(latest.metadata), *bound]),
            )

        added = [n for n in schema.names if n not in base.schema.names]
        new = tx.commit(self._log, base, "add_columns", rebase, {"columns": added})
        return Commit(new.version, "add_columns")

    def _alter_schema(
        self,
        operation: str,
        schema: pa.Schema,
        field_ids: tuple[int, ...],
        details: dict[str, Any],
        bindings: Sequence[binding.Binding],
    ) -> Commit:
        base = self._write_base(operation)

        def rebase(latest: Manifest) -> Manifest:
            tx.require_same_schema(operation, base, latest)
            metadata = binding.to_metadata(latest.metadata, bindings)
            return replace(
                latest, schema=schema, field_ids=field_ids, schema_epoch=latest.schema_epoch + 1, metadata=metadata
            )

        new = tx.commit(self._log, base, operation, rebase, details)
        return Commit(new.version, operation)

    def drop_columns(self, names: str | Sequence[str]) -> Commit:
        """Remove columns from the schema (a manifest change; data files are untouched)."""
        drop = [names] if isinstance(names, str) else list(names)
        schema = self.schema
        Snapshot(self._root, self._manifest(), self._cache).check_columns(drop)
        keep = [i for i, n in enumerate(schema.names) if n not in drop]
        if not keep:
            raise SchemaError("cannot drop every column of a table; drop the table instead")
        field_ids = tuple(self._manifest().field_ids[i] for i in keep)
        new_schema = pa.schema([schema.field(i) for i in keep], metadata=schema.metadata)
        kept = [b for b in binding.read(self._manifest().metadata) if b.column not in drop and b.source not in drop]
        return self._alter_schema("drop_columns", new_schema, field_ids, {"columns": drop}, kept)

    def rename_column(self, old: str, new: str) -> Commit:
        """Rename a column (a manifest change; data files are untouched)."""
        manifest = self._manifest()
        Snapshot(self._root, manifest, self._cache).check_columns([old])
        check_column_name(new)
        if new in manifest.schema.names:
            raise SchemaError(f"cannot rename {old!r} to {new!r}: a column {new!r} already exists")
        index = manifest.schema.get_field_index(old)
        schema = manifest.schema.set(index, manifest.schema.field(index).with_name(new))
        bindings = binding.renamed(binding.read(manifest.metadata), old, new)
        return self._alter_schema("rename_column", schema, manifest.field_ids, {"from": old, "to": new}, bindings)

    # -- chunks -------------------------------------------------------------------------

    @property
    def chunking(self) -> ChunkLayout | None:
        """The declared chunk layout (:meth:`set_chunking`), or None."""
        return chunk_layout.read(self._manifest().metadata)

    def set_chunking(
        self,
        parent: str,
        position: str | None = None,
        *,
        heading: str | None = None,
        text: str = "text",
        parent_table: str | None = None,
        parent_key: str = "source",
        parent_text: str = "text",
        title_row: str | None = None,
    ) -> Commit:
        """Declare that rows are chunks of documents: `parent` holds the document key, `position` the chunk's
        number in it, `heading` its heading path, `title_row` (bool) marks rows that are not passages (its
        title, :mod:`hybrid.query.title_rows`). Kept in the table's metadata for ``.group_by()`` and ``.expand()``.
        `parent_table`: a table of the same database with each document's text (`parent_key`, `parent_text`).

        >>> import hybrid, tempfile
        >>> t = hybrid.connect(tempfile.mkdtemp()).create_table("c", [{"doc_id": "a", "chunk_no": 0, "text": "x"}])
        >>> _ = t.set_chunking(parent="doc_id", position="chunk_no")
        >>> t.chunking.parent, t.chunking.position, t.chunking.title_row
        ('doc_id', 'chunk_no', None)
        """
        layout = ChunkLayout(parent, position, heading, text, parent_table, parent_key, parent_text, title_row)
        base = self._write_base("set_chunking")
        layout.check(base.schema)

        def rebase(latest: Manifest) -> Manifest:
            layout.check(latest.schema)
            return replace(latest, metadata=chunk_layout.to_metadata(latest.metadata, layout))

        details = {"parent": parent, "position": position}
        return Commit(tx.commit(self._log, base, "set_chunking", rebase, details).version, "set_chunking")

    # -- maintenance --------------------------------------------------------------------

    def compact(self, target_rows: int = 1 << 20) -> Commit:
        """Merge small fragments and purge deleted rows; row ids are kept.

        A compaction changes no content, so when another writer (or background upkeep)
        changed the same fragments first, it plans again on the newest version.
        """
        for attempt in range(COMPACT_ATTEMPTS):
            base = self._write_base("compact")
            runs = plan_compaction(base, target_rows)
            if not runs:
                return Commit(base.version, "compact")
            try:
                new = commit_compaction(Snapshot(self._root, base, self._cache), self._log, runs, "compact")
            except CommitConflictError:
                if attempt == COMPACT_ATTEMPTS - 1:
                    raise
                continue
            return Commit(new.version, "compact")
        raise AssertionError("unreachable")  # pragma: no cover

    def cleanup(self, older_than: dt.timedelta = dt.timedelta(days=7)) -> CleanupStats:
        """Delete versions older than `older_than` (never the newest) and files no kept version needs."""
        from hybrid.storage.writer import cleanup

        self._write_base("cleanup")
        tagged = set(self._log.tags().values())
        return cleanup(self._root, self._log, older_than.total_seconds(), keep=tagged.__contains__)

    def erase(self, where: str | None, *, by: str | None = None, verify: bool = False) -> EraseReport:
        """Remove the rows matching `where` from every retained version, index, cache and file, as a
        version "erase"; `verify` scans every file for the erased values (:mod:`hybrid.erasure`)."""
        from hybrid.erasure import erase

        self.wait_for_upkeep()
        return erase(self._writable(), where, by=by, verify=verify)

    # -- search and indexes ---------------------------------------------------------------

    def search(
        self,
        query: str | TextQuery | Sequence[float] | np.ndarray | None = None,
        *,
        query_type: QueryType = "auto",
        vector_column: str | None = None,
        fts_columns: Sequence[str] | None = None,
        fts_index: str | None = None,
    ) -> Query:
        """Start a search: text goes to the full-text branch, a vector to the vector branch.

        With an embedder bound to a vector column, text also goes to the vector
        branch (embedded with ``embed_query``): "auto" then runs both branches when
        a full-text index exists, else the vector branch alone.

        Returns an immutable :class:`hybrid.query.search.Query`; chain ``.where()``,
        ``.limit()``, ``.vector()``, ``.text()``, ``.fuse()``, ``.rerank()`` and end with
        ``.to_arrow()`` / ``.to_pandas()`` / ``.to_list()``.
        """
        fts = tuple(fts_columns) if fts_columns is not None else None
        vector = query if query is not None and is_vector_like(query) else None  # one dict made, not two
        q = Query.start(self, query_type, fts, vector_column, fts_index, vector)  # type: ignore[arg-type]
        if query is None or vector is not None:
            return q
        return self._tuned_defaults(q.text(query))  # type: ignore[arg-type]

    def create_fts_index(
        self,
        columns: str | Sequence[str],
        *,
        language: str = "auto",
        stem: bool = True,
        stop_words: bool = True,
        lowercase: bool = True,
        ascii_folding: bool | None = None,
        tokenizer: Tokenizer = "default",
        ngram_min: int = 2,
        ngram_max: int = 3,
        identifiers: bool = True,
        pieces: int | None = None,
        scoring: Literal["bm25f", "fields"] = "bm25f",
        weights: Mapping[str, int] | None = None,
        k1: float = 1.2,
        b: float = 0.75,
        filter_columns: Sequence[str] | None = None,
        positions: bool = True,
        name: str = "fts",
        replace: bool = False,
    ) -> Commit:
        """Build a tantivy BM25 index over string `columns`.

        `language` is an ISO 639-1 code ("en", "de", ...), "multi" (language-neutral analysis)
        or "auto" (default): detected from a sample of the columns and recorded with the index
        (``index_stats()["language_detection"]``); see `hybrid.index.analyzer` for what each
        language gets (``pieces=4``: a second field of 4-letter word pieces, off by default, see there).
        Several columns are scored as BM25F (``scoring="bm25f"``, `weights` repeats a column's text,
        e.g. ``{"title": 2}``) or column by column and summed (``scoring="fields"``); ``tokenizer="jieba"`` for Chinese.

        `k1` (term-frequency saturation) and `b` (length normalisation) default to tantivy's
        own, which it scores natively; with other values each query's top 100 tantivy hits
        are rescored, every term's BM25 recomputed from the term frequency and field length
        tantivy reports (``eval/results/bm25_params.md``: long sections gain from a higher
        `b`, single sentences from a lower one).

        `filter_columns` (integer, boolean or string columns; default: those with a scalar
        index) are stored in the index too, so that a selective filter of =, IN, ranges, AND and
        OR on them runs inside tantivy (``eval/results/search_varied.md``). `positions` records
        term positions, which phrase queries and ``Match(proximity=...)`` need; False makes the
        index about half as large, and such queries then raise ``QueryError``.
        """
        cols = [columns] if isinstance(columns, str) else list(columns)
        if not (isinstance(k1, (int, float)) and 0 <= k1 < float("inf")):
            raise ValueError(f"k1 must be a finite number >= 0, got {k1!r}")
        if not (isinstance(b, (int, float)) and 0 <= b <= 1):
            raise ValueError(f"b must be a number from 0 to 1, got {b!r}")
        if scoring not in ("bm25f", "fields"):
            raise ValueError(f"scoring must be 'bm25f' or 'fields', got {scoring!r}")
        if scoring == "fields" and weights:
            raise ValueError("weights apply to scoring='bm25f'; with scoring='fields' boost columns at query time")

        options = (stem, stop_words, lowercase, ascii_folding, tokenizer, ngram_min, ngram_max, identifiers)

        def analyzer_for(lang: str) -> Analyzer:
            return Analyzer(lang, *options, pieces=pieces)

        analyzer = analyzer_for if language == "auto" else analyzer_for(language)
        bm25f = dict(weights or {}) if scoring == "bm25f" else None
        filters, bm25 = None if filter_columns is None else list(filter_columns), (float(k1), float(b))
        new = manage.create_fts_index(self._writable(), cols, analyzer, name, replace, bm25f, bm25, filters, positions)
        return index_commit(new)

    def create_vector_index(
        self,
        column: str | None = None,
        *,
        metric: Literal["cosine", "l2", "dot"] = "cosine",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int | None = None,
        target_recall: float | None = None,
        name: str | None = None,
        replace: bool = False,
        kind: VectorKind = "hnsw",
        rescore: float | None = None,
        nprobe: int | None = None,
        partitions: int | None = None,
        batch_rows: int = 65_536,
    ) -> Commit:
        """Build a vector index over a vector column: ``kind`` "hnsw" (hnswlib, float vectors in RAM),
        "hnsw_int8", "ivf_pq", "ivf_rabitq" (compressed, rescored exactly) or "auto" (by row count and
        free memory; see the vector indexes guide). Compressed kinds propose ``rescore`` x k candidates;
        IVF kinds scan ``nprobe`` of ``partitions`` lists; builds read ``batch_rows`` rows at a time.

        `target_recall` (e.g. 0.95) tunes ef_search (and for compressed kinds nprobe and rescore) on
        a sample of the table's own vectors so that recall@10 against exact search reaches it with 95%
        confidence (the sample's lower bound, not its mean); the chosen values are in :meth:`index_stats`.
        """
        new = manage.create_vector_index(
            self._writable(), column, metric=metric, m=m, ef_construction=ef_construction, ef_search=ef_search,
            target_recall=target_recall, name=name, replace_existing=replace, kind=kind, rescore=rescore,
            nprobe=nprobe, partitions=partitions, batch_rows=batch_rows,
        )  # fmt: skip
        return index_commit(new)

    def create_scalar_index(
        self,
        column: str,
        *,
        kind: Literal["auto", "bitmap", "btree", "label_list"] = "auto",
        name: str | None = None,
        replace: bool = False,
    ) -> Commit:
        """Index one column's values so that filters on it skip DuckDB (compressed roaring bitmaps).

        `kind`: "bitmap" (one bitmap per value: tenants, categories, flags), "btree" (rows in
        value order: ranges over dates, prices, ids), "label_list" (list columns:
        ``list_contains(tags, 'x')``); "auto" picks label_list for lists, bitmap up to 1,024
        distinct values, btree above. Filters made of =, <>, <, <=, >, >=, IN, BETWEEN, IS [NOT]
        NULL and list_contains on indexed columns, joined by AND / OR / NOT, are answered from
        the indexes; rows added since the build, and any other filter, are evaluated by DuckDB.
        """
        return index_commit(manage.create_scalar_index(self._writable(), column, kind, name, replace))

    def index_stats(self) -> list[dict[str, Any]]:
        """Per index: rows indexed, dead (deleted since) and unindexed (added since), and its settings."""
        return manage.index_stats(self._writable())

    def optimize(self, rebuild: bool = False) -> list[Commit]:
        """Fold rows added, updated or deleted since each index was built into the index.

        Full-text and vector indexes are merged: the new rows are inserted into a copy
        of the index and deleted rows removed (tantivy) or marked deleted (hnswlib), at a
        small share of a rebuild's cost. `rebuild` builds every changed or merged
        index from scratch instead, as does a vector index whose graph would hold over
        a fifth deleted nodes. Background upkeep (:class:`hybrid.Upkeep`) does this by itself.
        """
        return [index_commit(m) for m in manage.optimize(self._writable(), rebuild)]

    def drop_index(self, name: str) -> Commit:
        return Commit(manage.drop_index(self._writable(), name).version, "drop_index")

    # -- versions -----------------------------------------------------------------------

    def versions(self) -> list[VersionInfo]:
        """Every retained version, oldest first."""
        out = []
        for v in self._log.list_versions():
            m = self._log.load(v)
            out.append(
                VersionInfo(
                    v, dt.datetime.fromtimestamp(m.timestamp, dt.timezone.utc), m.operation, m.num_rows, m.details
                )
            )
        return out

    def checkout(self, version: int | str) -> Table:
        """A read-only view of `version` (a number or a tag); this table object is unchanged.

        The view shares this table's caches of mapped files and loaded indexes (both immutable),
        so checking out each new version to read it consistently costs no reloading.
        """
        view = Table(self._root, pinned=self._log.load(self._log.resolve(version)))
        view._cache, view._search = self._cache, self._search
        return view

    def tag(self, name: str, version: int | None = None) -> None:
        """Name a version (default: the current one); tagged versions survive cleanup."""
        self._log.add_tag(name, self.version if version is None else version)

    def delete_tag(self, name: str) -> None:
        self._log.delete_tag(name)

    def tags(self) -> dict[str, int]:
        """Tag name -> version."""
        return self._log.tags()

    def checkout_latest(self) -> Table:
        """A writable table object that follows the newest version, sharing this one's caches of mapped
        files, loaded indexes and search state (a writer's new rows are then ready for this object's searches)."""
        latest = Table(self._root, upkeep=self._upkeep.policy if self._upkeep is not None else None)
        latest._cache, latest._search = self._cache, self._search
        return latest

    def restore(self, version: int | str) -> Commit:
        """Make the content of `version` (a number or a tag) the newest version; history is kept."""
        version = self._log.resolve(version)
        old = self._log.load(version)
        base = self._log.load_latest()

        def rebase(latest: Manifest) -> Manifest:
            return reset_content(latest, old)

        new = tx.commit(self._log, base, "restore", rebase, {"restored": version})
        return Commit(new.version, "restore")

    # -- integrity ------------------------------------------------------------------------

    def check(self, all_versions: bool = False) -> CheckReport:
        """Read every file the newest version (or every retained one) needs and compare it with its checksum.

        Returns a report of each damaged or missing file and the versions that need it
        (``report.ok``); nothing is changed. ``hybrid check`` runs this.
        """
        return check_table(self._root, self._log.list_versions() if all_versions else None)

    def repair(self) -> list[Commit]:
        """Apply the safe repairs :meth:`check` points to, as new commits; nothing is deleted.

        If the newest version's data (manifest, pages, data, row-id or deletion files) is damaged,
        the newest version whose data is intact is restored (history and the damaged files stay);
        then every index of the newest version with a damaged file is rebuilt from the data.
        Raises :class:`hybrid.errors.CorruptionError` when no retained version has intact data.
        """
        self._writable()  # read-only checkouts refuse here
        commits: list[Commit] = []
        report = self.check()
        if report.data_broken(report.versions[0]):
            every = self.check(all_versions=True)
            intact = [v for v in every.versions if not every.data_broken(v)]
            if not intact:
                raise CorruptionError(f"no retained version of table {self.name} has intact data:\n{every.summary()}")
            commits.append(self.restore(intact[-1]))
            report = self.check()
        broken = set(report.broken_indexes.get(report.versions[0], ()))
        writable = self._writable()
        for entry in writable.view().entries():
            if entry.name in broken:
                commits.append(index_commit(manage.optimize_index(writable, entry, rebuild=True)))
        return commits


DataTransform = Callable[[pa.RecordBatch], Any]
